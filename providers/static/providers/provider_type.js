// Provider form: show only the fieldsets (and the provider-models columns) of the selected
// type. Fieldsets marked "only-for only-<type> ..." by providers/admin.py; without this
// script every field stays visible. Hidden fields keep their values and are still posted.
"use strict";
(function () {
  function apply(type) {
    document.querySelectorAll("fieldset.only-for").forEach(function (fieldset) {
      fieldset.style.display = type && !fieldset.classList.contains("only-" + type) ? "none" : "";
    });
    // Azure deployments are the only per-model field that belongs to one type.
    var azure = !type || type === "azure";
    document.querySelectorAll("#models-group .column-deployment, #models-group td.field-deployment")
      .forEach(function (cell) { cell.style.display = azure ? "" : "none"; });
  }
  function start() {
    var select = document.getElementById("id_type");
    if (!select) return;
    apply(select.value);
    select.addEventListener("change", function () { apply(select.value); });
    // A row added with "Add another provider model" follows the selected type too.
    document.addEventListener("formset:added", function () { apply(select.value); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
