// Claimdesk desk, admin pages: the copy button next to a secret shown once.
// Without this file the secret is still there to select and copy by hand.
(function () {
  "use strict";

  function report(button, text) {
    var box = button.closest(".secret-once");
    var status = box ? box.querySelector(".copy-status") : null;
    if (status) status.textContent = text;
  }

  function copy(button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    input.focus();
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(
        function () { report(button, "Copied."); },
        function () { report(button, "Could not copy: it is selected, press Ctrl+C (or ⌘C)."); }
      );
      return;
    }
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    report(button, done ? "Copied." : "It is selected: press Ctrl+C (or ⌘C) to copy.");
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { copy(button); });
    });
  });
})();
