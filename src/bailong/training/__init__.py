"""Training: Trainer's arguments, the trainer and its callbacks, checkpoints and resume, the shared run skeleton."""
