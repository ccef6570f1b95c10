// carelink portal: the referral form's checks in the browser. Every constraint comes
// from the contract's JSON Schema, rendered by the server as HTML attributes
// (required, maxlength, min, max, pattern …), and every message from the server's own
// table (data-messages): the same messages the server gives for the same rule.
(function () {
  "use strict";
  var KEYS = ["valueMissing", "typeMismatch", "patternMismatch", "tooLong", "tooShort",
              "rangeUnderflow", "rangeOverflow", "stepMismatch", "badInput"];

  function messagesOf(el) {
    var holder = el.closest("[data-messages]") || el;
    var named = el.form ? el.form.querySelector('[name="' + el.name + '"][data-messages]') : null;
    try { return JSON.parse((named || holder).getAttribute("data-messages") || "{}"); }
    catch (e) { return {}; }
  }

  function errorBox(el) {
    var ids = (el.getAttribute("aria-describedby") || "").split(" ");
    return ids.length && ids[0] ? document.getElementById(ids[0]) : null;
  }

  function show(el, text) {
    var box = errorBox(el);
    if (box) { box.textContent = text || ""; }
    if (el.matches("input, select, textarea")) {
      if (text) { el.setAttribute("aria-invalid", "true"); } else { el.removeAttribute("aria-invalid"); }
    }
  }

  function notBefore(el) {
    var other = el.getAttribute("data-not-before");
    if (!other || !el.form) { return; }
    var earlier = el.form.querySelector('[name="' + other + '"]');
    if (earlier && earlier.value) { el.min = earlier.value; }
  }

  function checkField(el) {
    if (el.hasAttribute("data-not-before")) { notBefore(el); }
    var v = el.validity, msgs = messagesOf(el);
    for (var i = 0; i < KEYS.length; i++) {
      if (v[KEYS[i]]) {
        var key = KEYS[i];
        if (key === "rangeUnderflow" && el.hasAttribute("data-not-before")) { key = "notBefore"; }
        show(el, msgs[key] || el.validationMessage);
        return false;
      }
    }
    show(el, "");
    return true;
  }

  function checkGroup(box) {
    var chosen = box.querySelectorAll('input[type=checkbox]:checked').length;
    var min = parseInt(box.getAttribute("data-min-items") || "0", 10);
    var max = parseInt(box.getAttribute("data-max-items") || "0", 10);
    var msgs = JSON.parse(box.getAttribute("data-messages") || "{}");
    var text = chosen < min ? msgs.tooFewItems : (max && chosen > max ? msgs.tooManyItems : "");
    show(box, text || "");
    return !text;
  }

  document.querySelectorAll("form[data-validate]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      if (submitter && submitter.value === "save") { return; }  // drafts may be incomplete
      var first = null, seen = {};
      form.querySelectorAll("input, select, textarea").forEach(function (el) {
        if (!el.name || el.type === "hidden" || el.type === "checkbox" && el.closest("[data-group]")) { return; }
        if (el.type === "radio") { if (seen[el.name]) { return; } seen[el.name] = true; }
        if (!checkField(el) && !first) { first = el; }
      });
      form.querySelectorAll("[data-group]").forEach(function (box) {
        if (!checkGroup(box) && !first) { first = box.querySelector("input"); }
      });
      if (first) { event.preventDefault(); first.focus(); }
    });
    form.addEventListener("change", function (event) {
      var el = event.target;
      var group = el.closest("[data-group]");
      if (group) { checkGroup(group); } else if (el.name) { checkField(el); }
    });
  });

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
