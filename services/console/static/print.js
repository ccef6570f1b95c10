// The case page's print button: the browser's own print dialog, with the print
// stylesheet (console.css, @media print) laying the report out on A4.
(function () {
  "use strict";
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
