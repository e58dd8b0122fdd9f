// Filters the answers of an eval section by category, language and model. Without JavaScript everything is shown.
document.querySelectorAll("form.filters").forEach(function (form) {
  var section = document.getElementById(form.dataset.section);
  form.hidden = false;
  function apply() {
    var category = form.elements.category.value;
    var language = form.elements.language.value;
    var missedOnly = form.elements.missed.checked;
    var models = {};
    form.querySelectorAll("input[name=model]").forEach(function (box) { models[box.value] = box.checked; });
    var shown = 0, questions = section.querySelectorAll("article.question");
    questions.forEach(function (q) {
      var show = (!category || q.dataset.category === category) && (!language || q.dataset.language === language) &&
        (!missedOnly || q.dataset.missed === "1");
      q.hidden = !show;
      shown += show ? 1 : 0;
    });
    section.querySelectorAll("[data-model]").forEach(function (el) { el.hidden = models[el.dataset.model] === false; });
    form.querySelector("output").textContent = shown + " of " + questions.length + " questions";
  }
  form.addEventListener("change", apply);
  apply();
});
