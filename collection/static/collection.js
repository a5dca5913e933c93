// Checks the one-person form as it is typed: the draft goes to /collection/api/check, which runs the
// same validation as a submission, and each field shows its messages. No libraries, no CDN.
(function () {
  "use strict";
  var form = document.getElementById("person-form");
  if (!form) return;
  var timer = null;
  var seq = 0;

  function draft() {
    var values = {};
    form.querySelectorAll("[data-field]").forEach(function (box) {
      var input = box.querySelector("input, select, textarea");
      values[box.dataset.field] = input.value;
    });
    return values;
  }

  function show(errors) {
    form.querySelectorAll("[data-field]").forEach(function (box) {
      var key = box.dataset.field;
      var input = box.querySelector("input, select, textarea");
      var messages = errors[key] || [];
      var touched = input.value !== "" || box.classList.contains("invalid");
      box.classList.toggle("invalid", messages.length > 0);
      box.classList.toggle("valid", messages.length === 0 && input.value !== "");
      box.querySelector(".msg").textContent = touched ? messages.join("；") : "";
    });
  }

  function check() {
    var mine = ++seq;
    fetch(form.dataset.check, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: JSON.stringify({ values: draft() })
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (result) {
        if (result && mine === seq) {
          show(result.errors);
          form.dataset.checked = String(mine);
        }
      })
      .catch(function () { /* offline: the server checks again on submit */ });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
