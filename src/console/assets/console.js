// mailgate console: small progressive enhancements. Every page works without this file.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Template editor: re-render the preview as you type, through the same code as
// POST /v1/templates/validate. Everything from the server is written as text, except the
// rendered HTML, which goes into a sandboxed frame that runs no script.
(() => {
  const form = document.getElementById("template-form");
  if (!form) return;
  const url = form.getAttribute("data-preview");
  const csrf = form.querySelector("input[name=csrf]").value;
  const state = document.getElementById("preview-state");
  const errors = document.getElementById("preview-errors");
  const subject = document.getElementById("preview-subject");
  const html = document.getElementById("preview-html");
  const text = document.getElementById("preview-text");
  let timer = null;
  let sequence = 0;

  const show = (answer) => {
    errors.replaceChildren();
    if (answer.errors) {
      for (const e of answer.errors) {
        const li = document.createElement("li");
        li.textContent = `${e.field}: ${e.message}`;
        errors.append(li);
      }
      state.textContent = "The template has errors.";
      return;
    }
    const r = answer.rendered || {};
    subject.textContent = r.subject || "";
    html.srcdoc = r.html || "";
    text.textContent = r.text || "";
    state.textContent = "Rendered as you type.";
  };

  const render = async () => {
    const mine = ++sequence;
    const body = {};
    for (const name of ["subject", "html", "text", "layout", "variables"]) {
      body[name] = form.elements[name].value;
    }
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      if (mine !== sequence) return;
      if (!response.ok) {
        state.textContent = `The preview failed (${response.status}).`;
        return;
      }
      show(await response.json());
    } catch (e) {
      state.textContent = "The preview could not reach the server.";
    }
  };

  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(render, 250);
  });
  render();
})();

// Domains: a Copy button beside each record's name and value (shown only when this file
// runs, since without it the button could do nothing; the text is selectable either way).
(() => {
  const buttons = document.querySelectorAll("button[data-copy]");
  if (!buttons.length || !navigator.clipboard) return;
  for (const button of buttons) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.getAttribute("data-copy"));
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (e) {
        button.textContent = "Select and copy";
      }
    });
  }
})();
