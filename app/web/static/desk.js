// Claimdesk desk: keyboard shortcuts, the shortcut help, and evidence upload with progress.
// Everything works without this file except drag-and-drop and the progress bar.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  // --- keyboard shortcuts ---------------------------------------------------------------------
  var pendingG = false;

  function clickShortcut(key) {
    var el = document.querySelector('[data-shortcut="' + key + '"]');
    if (!el || el.disabled) return false;
    el.focus();
    el.click();
    return true;
  }

  function toggleHelp() {
    var help = document.getElementById("shortcuts");
    if (!help || typeof help.showModal !== "function") return;
    if (help.open) help.close();
    else help.showModal();
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    var help = document.getElementById("shortcuts");
    if (help && help.open && event.key !== "?") return;
    var key = event.key;
    if (pendingG) {
      pendingG = false;
      if (key === "q") { window.location.assign("/desk/"); event.preventDefault(); }
      else if (key === "r") { window.location.assign("/desk/review"); event.preventDefault(); }
      return;
    }
    if (key === "?") { toggleHelp(); event.preventDefault(); return; }
    if (key === "/") {
      var search = document.querySelector("[data-search]");
      if (search) { search.focus(); search.select(); event.preventDefault(); }
      else { window.location.assign("/desk/#q"); event.preventDefault(); }
      return;
    }
    if (key === "g") { pendingG = true; window.setTimeout(function () { pendingG = false; }, 1200); return; }
    if (key === "n" || key === "s" || key === "a") {
      if (clickShortcut(key)) event.preventDefault();
    }
  });

  // Focus the first refusal on the page so a screen reader and the keyboard start there.
  document.addEventListener("DOMContentLoaded", function () {
    var problem = document.querySelector(".problem[role=alert]");
    if (problem) problem.focus();
    if (window.location.hash === "#q") {
      var search = document.querySelector("[data-search]");
      if (search) search.focus();
    }
    document.querySelectorAll("[data-upload]").forEach(setUpUpload);
  });

  // --- evidence upload: drag and drop, progress, the problem detail in place --------------------
  function setUpUpload(form) {
    var zone = form.querySelector(".dropzone");
    var input = form.querySelector('input[type="file"]');
    var status = form.querySelector(".upload-status");
    var bar = form.querySelector("progress");
    var text = form.querySelector(".upload-text");
    var problem = form.querySelector(".upload-problem");
    var button = form.querySelector('button[type="submit"]');
    if (!zone || !input) return;

    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("is-over");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.remove("is-over");
      });
    });
    zone.addEventListener("drop", function (event) {
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        showChosen();
      }
    });
    input.addEventListener("change", showChosen);

    function showChosen() {
      if (!input.files || !input.files.length) return;
      var file = input.files[0];
      text.textContent = "Ready: " + file.name + " (" + human(file.size) + ")";
      status.hidden = false;
      bar.value = 0;
    }

    function showProblem(message) {
      problem.textContent = message;
      problem.hidden = false;
      problem.focus();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      problem.hidden = true;
      if (!input.files || !input.files.length) {
        showProblem("Choose a file first, or drop one on the box.");
        return;
      }
      var limit = parseInt(form.getAttribute("data-max-bytes") || "0", 10);
      if (limit && input.files[0].size > limit) {
        showProblem("The file is " + human(input.files[0].size) + "; the upload limit is " + human(limit) + ".");
        return;
      }
      var data = new FormData();
      // Fields first, the file last: the server checks them before it streams the file.
      form.querySelectorAll("select, textarea, input[type=text]").forEach(function (el) {
        if (el.name && el.value) data.append(el.name, el.value);
      });
      data.append("file", input.files[0], input.files[0].name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action"));
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          bar.max = e.total;
          bar.value = e.loaded;
          text.textContent = "Uploading " + input.files[0].name + ": " + Math.round((100 * e.loaded) / e.total) + "%";
        }
      });
      xhr.addEventListener("load", function () {
        button.disabled = false;
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300 && body && body.redirect) {
          bar.value = bar.max;
          text.textContent = "Uploaded. Loading…";
          window.location.assign(body.redirect);
          return;
        }
        text.textContent = "Not uploaded.";
        showProblem((body && body.detail) || "The upload failed (HTTP " + xhr.status + ").");
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        text.textContent = "Not uploaded.";
        showProblem("The connection broke off during the upload; nothing was stored. Try again.");
      });
      status.hidden = false;
      button.disabled = true;
      text.textContent = "Uploading " + input.files[0].name + "…";
      xhr.send(data);
    });
  }

  function human(n) {
    if (n < 1024) return n + " bytes";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
    if (n < 1024 * 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + " MiB";
    return (n / 1024 / 1024 / 1024).toFixed(2) + " GiB";
  }
})();
