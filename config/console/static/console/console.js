/* The console's small helpers. Every page works without them; with them the trigger editor
   shows live character and byte counters, keeps the "leads to" lists in step with the step
   names, shows only the fields that apply to the chosen event and choice, and redraws the
   phone preview as you type. No framework, no inline script (the CSP allows only this file). */
"use strict";

(function () {
  const encoder = new TextEncoder();

  function countFor(input) {
    const counter = document.querySelector('[data-counter-for="' + input.id + '"]');
    if (!counter) return;
    const text = input.value;
    const chars = Array.from(text).length;
    if (input.dataset.countBytes) {
      const limit = Number(input.dataset.countBytes);
      const bytes = encoder.encode(text).length;
      const block = input.closest(".message");
      const withButtons = block && Array.from(block.querySelectorAll("[data-choice-kind]"))
        .some(function (select) { return select.value !== "quick_reply"; });
      const charLimit = Number(input.dataset.countCharsButtons || 0);
      let words = chars + " characters · " + bytes + " of " + limit + " bytes";
      let over = bytes > limit;
      if (withButtons && charLimit) {
        words += " · with buttons at most " + charLimit + " characters";
        over = over || chars > charLimit;
      }
      counter.textContent = words;
      counter.classList.toggle("over", over);
    } else if (input.dataset.countChars) {
      const limit = Number(input.dataset.countChars);
      counter.textContent = chars + " of " + limit + " characters";
      counter.classList.toggle("over", chars > limit);
    }
  }

  function stepNames() {
    return Array.from(document.querySelectorAll("[data-step-name]"))
      .map(function (input) { return input.value.trim(); })
      .filter(function (name) { return name; });
  }

  function refreshNextLists() {
    const names = stepNames();
    document.querySelectorAll("select[data-next]").forEach(function (select) {
      const chosen = select.value;
      while (select.options.length > 1) select.remove(1);
      names.forEach(function (name) { select.add(new Option(name, name, false, name === chosen)); });
      if (chosen && names.indexOf(chosen) < 0) {
        select.add(new Option(chosen + " (no such step)", chosen, false, true));
      }
    });
  }

  function showForEvent() {
    const event = document.getElementById("id_event");
    if (!event) return;
    document.querySelectorAll("[data-events]").forEach(function (element) {
      const applies = element.dataset.events.split(" ").indexOf(event.value) >= 0;
      element.hidden = !applies;
    });
  }

  function showForChoice(select) {
    const row = select.closest(".choice");
    if (!row) return;
    row.querySelectorAll("[data-kinds]").forEach(function (element) {
      element.hidden = element.dataset.kinds.split(" ").indexOf(select.value) < 0;
    });
  }

  let previewTimer = null;
  function redrawPreview(form) {
    const target = document.getElementById("preview");
    if (!target || !window.fetch) return;
    clearTimeout(previewTimer);
    previewTimer = setTimeout(function () {
      const data = new FormData(form);
      data.append("_preview", "1");
      fetch(window.location.pathname + "?fragment=preview", {
        method: "POST", body: data, credentials: "same-origin",
      }).then(function (response) {
        return response.ok ? response.text() : null;
      }).then(function (html) {
        if (html) target.innerHTML = html;
      }).catch(function () { /* the "Update the preview" button still works */ });
    }, 400);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("trigger-editor");
    if (!form) return;
    form.querySelectorAll("[data-count-bytes], [data-count-chars]").forEach(countFor);
    form.querySelectorAll("[data-choice-kind]").forEach(showForChoice);
    showForEvent();
    form.addEventListener("input", function (event) {
      const target = event.target;
      if (target.dataset.countBytes || target.dataset.countChars) countFor(target);
      if (target.hasAttribute("data-step-name")) refreshNextLists();
      redrawPreview(form);
    });
    form.addEventListener("change", function (event) {
      const target = event.target;
      if (target.id === "id_event") showForEvent();
      if (target.hasAttribute("data-choice-kind")) {
        showForChoice(target);
        const block = target.closest(".message");
        if (block) block.querySelectorAll("[data-count-bytes]").forEach(countFor);
      }
      redrawPreview(form);
    });
  });
})();
