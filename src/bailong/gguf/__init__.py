"""GGUF export: the merged run as one llama.cpp file (model, vocabulary, writer) and checks with llama.cpp."""
