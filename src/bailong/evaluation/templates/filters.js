// Filters the answers of an eval section by category, language and model. Without JavaScript everything is shown.
// The page's query string sets the filters (report.html?category=math&language=en&models=base,sft&missed=1), and
// changing them updates it, so a filtered view can be linked to.
var params = new URLSearchParams(location.search);
document.querySelectorAll("form.filters").forEach(function (form) {
  var section = document.getElementById(form.dataset.section);
  var boxes = form.querySelectorAll("input[name=model]");
  form.hidden = false;
  if (params.has("category")) form.elements.category.value = params.get("category");
  if (params.has("language")) form.elements.language.value = params.get("language");
  if (params.has("models")) {
    var keep = params.get("models").split(",");
    boxes.forEach(function (box) { box.checked = keep.indexOf(box.value) >= 0; });
  }
  form.elements.missed.checked = params.get("missed") === "1";
  function remember() {
    var query = new URLSearchParams();
    if (form.elements.category.value) query.set("category", form.elements.category.value);
    if (form.elements.language.value) query.set("language", form.elements.language.value);
    var kept = Array.prototype.filter.call(boxes, function (box) { return box.checked; });
    if (kept.length < boxes.length) query.set("models", kept.map(function (box) { return box.value; }).join(","));
    if (form.elements.missed.checked) query.set("missed", "1");
    try { history.replaceState(null, "", "?" + query.toString() + location.hash); } catch (e) { /* file: URLs may refuse */ }
  }
  function apply() {
    var category = form.elements.category.value;
    var language = form.elements.language.value;
    var missedOnly = form.elements.missed.checked;
    var models = {};
    boxes.forEach(function (box) { models[box.value] = box.checked; });
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
  form.addEventListener("change", function () { apply(); remember(); });
  apply();
});
