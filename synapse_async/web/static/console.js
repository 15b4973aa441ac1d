// The admin console's one script (SPEC §28.3). Pages are rendered on the server and read without it; it does two
// things, both by data-* attributes (no inline code: CSP):
//  1. form[data-api]: sends the form to the JSON API — the same route a JSON client calls — with the CSRF header
//     (§21.1) and the form's Idempotency-Key (a double click or a retry does one thing), shows the API's field
//     errors beside their fields, and for wide changes shows the dry-run preview or a confirm step first.
//  2. [data-live]: regions refreshed from the same page URL every few seconds (jobs, logs, overview).
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var a = new Uint8Array(16); window.crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // --- encoding the fields ---------------------------------------------------------------------------------
  function controls(form) {
    return Array.prototype.filter.call(form.elements, function (c) {
      return c.name && !c.disabled && c.type !== "submit" && c.type !== "button" && !c.hasAttribute("data-skip");
    });
  }

  function changed(c) {
    if (c.type === "checkbox") return c.checked !== c.defaultChecked;
    if (c.tagName === "SELECT") {
      return Array.prototype.some.call(c.options, function (o) { return o.selected !== o.defaultSelected; });
    }
    return c.value !== c.defaultValue;
  }

  function lines(text) {
    return text.split(/[\s,]+/).map(function (s) { return s.trim(); }).filter(Boolean);
  }

  // The JSON value of a control by its data-json type; undefined = leave it out of the body.
  function valueOf(c) {
    var kind = c.getAttribute("data-json") || "string";
    if (c.type === "checkbox") return c.checked;
    if (c.type === "file") return undefined;
    if (c.tagName === "SELECT" && c.multiple) {
      return Array.prototype.filter.call(c.options, function (o) { return o.selected; })
        .map(function (o) { return o.value; });
    }
    var raw = c.value;
    if (raw.trim() === "") {
      if (kind === "snowflake" && c.hasAttribute("data-nullable")) return null;
      if (kind === "snowflake_list" || kind === "string_list") return [];
      if (!c.required) return undefined;
    }
    switch (kind) {
      case "int": return /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
      case "float": return raw.trim() !== "" && !isNaN(Number(raw)) ? Number(raw) : raw;
      case "bool": return raw === "true";
      case "snowflake_list": case "string_list": return lines(raw);
      case "json": try { return JSON.parse(raw); } catch (e) { return raw; }
      // A datetime-local input labelled UTC: "2027-01-31T18:00" → "2027-01-31T18:00:00Z" (the API wants an offset).
      case "utc": return /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$/.test(raw) ? raw + (raw.length === 16 ? ":00Z" : "Z") : raw;
      default: return raw;
    }
  }

  function put(target, name, value, nest) {
    if (!nest || name.indexOf(".") < 0) { target[name] = value; return; }
    var head = name.slice(0, name.indexOf(".")), rest = name.slice(name.indexOf(".") + 1);
    if (typeof target[head] !== "object" || target[head] === null) target[head] = {};
    put(target[head], rest, value, nest);
  }

  function request(form, preview) {
    var url = form.getAttribute("data-api");
    var shape = form.getAttribute("data-body") || "fields";
    var onlyChanged = form.hasAttribute("data-changed-only");
    var nest = form.hasAttribute("data-nest");
    var body = {}, query = [], count = 0, file = null;
    controls(form).forEach(function (c) {
      if (c.type === "file") { file = c.files && c.files[0]; return; }
      if (onlyChanged && !changed(c)) return;
      var v = valueOf(c);
      if (v === undefined) return;
      var slot = "{" + c.name + "}";
      if (url.indexOf(slot) >= 0) { url = url.replace(slot, encodeURIComponent(String(v))); return; }
      if (c.hasAttribute("data-query")) { query.push(encodeURIComponent(c.name) + "=" + encodeURIComponent(String(v))); return; }
      put(body, c.name, v, nest); count++;
    });
    if (preview) query.push("dry_run=true");
    if (query.length) url += (url.indexOf("?") >= 0 ? "&" : "?") + query.join("&");
    var headers = { "X-CSRF-Token": CSRF, "Accept": "application/json", "Idempotency-Key": preview ? newKey() : form.getAttribute("data-idempotency-key") };
    var payload = null;
    if (shape === "file") {
      payload = file;
      headers["Content-Type"] = file && file.name && /\.csv$/i.test(file.name) ? "text/csv" : "application/json";
    } else if (shape === "values") {
      payload = JSON.stringify({ values: body }); headers["Content-Type"] = "application/json";
    } else if (shape === "fields") {
      payload = JSON.stringify(body); headers["Content-Type"] = "application/json";
    }
    return { url: url, method: (form.getAttribute("data-method") || "POST").toUpperCase(), headers: headers, body: payload, count: count, file: file };
  }

  // --- errors beside their fields -----------------------------------------------------------------------------
  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach(function (e) { e.textContent = ""; e.hidden = true; });
    form.querySelectorAll("[aria-invalid]").forEach(function (c) { c.removeAttribute("aria-invalid"); });
    var summary = form.querySelector("[data-form-error]");
    if (summary) { summary.textContent = ""; summary.hidden = true; }
  }

  function placeError(form, detail) {
    var field = String(detail.field || "");
    var candidates = [field, field.replace(/^body\./, ""), field.replace(/^values\./, ""), field.split(".").pop()];
    for (var i = 0; i < candidates.length; i++) {
      if (!candidates[i]) continue;
      var slot = form.querySelector('[data-error-for~="' + candidates[i].replace(/["\\]/g, "") + '"]');
      if (slot) {
        slot.textContent = (slot.textContent ? slot.textContent + " " : "") + (detail.message || detail.problem);
        slot.hidden = false;
        var input = document.getElementById(slot.getAttribute("data-input") || "");
        if (input) input.setAttribute("aria-invalid", "true");
        return true;
      }
    }
    return false;
  }

  function showErrors(form, status, payload) {
    var error = (payload && payload.error) || {};
    var details = Array.isArray(error.details) ? error.details : [];
    var unplaced = details.filter(function (d) { return !placeError(form, d); });
    var summary = form.querySelector("[data-form-error]");
    var text = error.message || ("The request failed (" + status + ").");
    // A message that only repeats the one reason already shown beside its field is not said twice.
    if (details.length === 1 && !unplaced.length && details[0].message === error.message) text = "Please correct the field marked above.";
    if (unplaced.length) text += " " + unplaced.map(function (d) { return (d.field ? d.field + ": " : "") + (d.message || d.problem); }).join("; ");
    if (error.details && !Array.isArray(error.details) && error.details.reason) text += " (" + error.details.reason + ")";
    if (summary) { summary.textContent = text; summary.hidden = false; summary.focus(); }
    var first = form.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
  }

  // --- rendering an API answer (previews, results) as text-only DOM -------------------------------------------
  function label(key) { return String(key).replace(/_/g, " "); }

  // Ids an answer carries (role ids in a level-role preview) shown by name: the nearest [data-names] holds a JSON
  // object id -> name, set by the page from its twins.
  var names = {};
  function namesFor(form) {
    var holder = form.closest("[data-names]");
    try { return holder ? JSON.parse(holder.getAttribute("data-names")) || {} : {}; } catch (e) { return {}; }
  }
  function named(v) { return Object.prototype.hasOwnProperty.call(names, String(v)) ? names[String(v)] : v; }

  function render(value, depth) {
    depth = depth || 0;
    if (value === null || value === undefined) return el("span", "muted", "—");
    if (Array.isArray(value)) {
      if (!value.length) return el("span", "muted", "none");
      if (typeof value[0] !== "object" || value[0] === null) return el("span", "", value.map(named).join(", "));
      var keys = [];
      value.forEach(function (row) { Object.keys(row || {}).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); }); });
      var wrap = el("div", "table-wrap"), table = el("table", "data"), head = el("tr");
      wrap.tabIndex = 0; // a table wider than the screen scrolls: reachable by keyboard
      keys.forEach(function (k) { var th = el("th", "", label(k)); th.scope = "col"; head.appendChild(th); });
      var thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
      var tbody = el("tbody");
      value.slice(0, 25).forEach(function (row) {
        var tr = el("tr");
        keys.forEach(function (k) { var td = el("td"); td.appendChild(render(row[k], depth + 1)); tr.appendChild(td); });
        tbody.appendChild(tr);
      });
      table.appendChild(tbody); wrap.appendChild(table);
      if (value.length > 25) wrap.appendChild(el("p", "muted", "… and " + (value.length - 25) + " more"));
      return wrap;
    }
    if (typeof value === "object") {
      var dl = el("dl", depth ? "kv nested" : "kv");
      Object.keys(value).forEach(function (k) {
        dl.appendChild(el("dt", "", label(k)));
        var dd = el("dd"); dd.appendChild(render(value[k], depth + 1)); dl.appendChild(dd);
      });
      return dl;
    }
    if (typeof value === "number") return el("span", "num", value.toLocaleString("en-US"));
    return el("span", "", String(named(value)));
  }

  // --- the flash that survives the reload after a change --------------------------------------------------------
  function flash(text) {
    var box = document.querySelector("[data-flash]");
    if (!box || !text) return;
    box.textContent = text; box.hidden = false;
  }

  // --- submitting ---------------------------------------------------------------------------------------------
  function send(form, preview) {
    names = namesFor(form);
    var r = request(form, preview);
    if (form.hasAttribute("data-changed-only") && r.count === 0 && !preview) {
      var summary = form.querySelector("[data-form-error]");
      if (summary) { summary.textContent = "Nothing changed."; summary.hidden = false; }
      return Promise.resolve(null);
    }
    if (form.getAttribute("data-body") === "file" && !r.file) {
      showErrors(form, 400, { error: { message: "Choose a file first.", details: [{ field: "file", message: "Choose a file first." }] } });
      return Promise.resolve(null);
    }
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    form.setAttribute("aria-busy", "true");
    clearErrors(form);
    return fetch(r.url, { method: r.method, headers: r.headers, body: r.body, credentials: "same-origin" })
      .then(function (response) {
        return response.text().then(function (text) {
          var payload = null;
          try { payload = text ? JSON.parse(text) : null; } catch (e) { payload = null; }
          return { status: response.status, ok: response.ok, payload: payload };
        });
      })
      .then(function (answer) {
        if (!preview) form.setAttribute("data-idempotency-key", newKey()); // definitive: the next submit is new
        if (!answer.ok) { showErrors(form, answer.status, answer.payload); return null; }
        return answer;
      }, function () {
        // Network error: keep the key, so pressing again replays the same request instead of doing it twice.
        showErrors(form, 0, { error: { message: "The server could not be reached. Press again to retry safely." } });
        return null;
      })
      .finally(function () {
        buttons.forEach(function (b) { b.disabled = false; });
        form.removeAttribute("aria-busy");
      });
  }

  function finish(form, answer) {
    var after = form.getAttribute("data-after") || "reload";
    var message = form.getAttribute("data-success") || "Saved.";
    if (after === "result") {
      var out = form.querySelector("[data-result]");
      if (out) { out.replaceChildren(render(answer.payload)); out.hidden = false; }
      flash(message);
      return;
    }
    try { window.sessionStorage.setItem("synapse-flash", message); } catch (e) { /* private mode */ }
    if (after === "reload") window.location.reload();
    else window.location.assign(after.replace(/\{(\w+)\}/g, function (_, k) {
      return answer.payload && answer.payload[k] !== undefined ? encodeURIComponent(answer.payload[k]) : "";
    }));
  }

  function step(form, panel, content, confirmText) {
    // The preview or confirm panel: what will happen, then "Confirm" (the real request) or "Back".
    panel.replaceChildren();
    if (content) panel.appendChild(content);
    var row = el("div", "actions");
    var back = el("button", "button ghost", "Back"); back.type = "button";
    back.addEventListener("click", function () { panel.hidden = true; panel.replaceChildren(); });
    panel.hidden = false;
    if (!confirmText) { row.appendChild(back); panel.appendChild(row); back.focus(); return; } // nothing to confirm
    var ok = el("button", "button danger", confirmText); ok.type = "button"; ok.setAttribute("data-confirm-button", "");
    row.appendChild(ok); row.appendChild(back); panel.appendChild(row);
    ok.focus();
    ok.addEventListener("click", function () {
      send(form, false).then(function (answer) {
        if (answer) { panel.hidden = true; finish(form, answer); }
      });
    });
  }

  function onSubmit(event) {
    var form = event.target.closest("form[data-api]");
    if (!form) return;
    event.preventDefault();
    var panel = form.querySelector("[data-step]");
    if (form.hasAttribute("data-preview") && panel) {
      send(form, true).then(function (answer) {
        if (!answer) return;
        var box = el("div", "preview");
        box.appendChild(el("h3", "", form.getAttribute("data-preview") || "What this will do"));
        var part = form.getAttribute("data-preview-field"); // show one member of the answer (e.g. an import's report)
        box.appendChild(render(part && answer.payload ? answer.payload[part] : answer.payload));
        // data-preview-stop="<a.b>": when the preview's value there is truthy (e.g. an import's invalid.count), the
        // real request would be refused, so no Confirm is offered; data-preview-stop-text says why.
        var stop = form.getAttribute("data-preview-stop"), blocked = answer.payload;
        if (stop) stop.split(".").forEach(function (k) { blocked = blocked && typeof blocked === "object" ? blocked[k] : undefined; });
        if (stop && blocked) box.appendChild(el("p", "error form-error", form.getAttribute("data-preview-stop-text") || "This cannot be confirmed."));
        step(form, panel, box, stop && blocked ? null : form.getAttribute("data-confirm-label") || "Confirm");
      });
      return;
    }
    if (form.hasAttribute("data-confirm") && panel) {
      step(form, panel, el("p", "confirm-text", form.getAttribute("data-confirm")), form.getAttribute("data-confirm-label") || "Confirm");
      return;
    }
    send(form, false).then(function (answer) { if (answer) finish(form, answer); });
  }

  // --- live regions -------------------------------------------------------------------------------------------
  function refresh(region) {
    if (document.hidden || region.contains(document.activeElement) && document.activeElement !== document.body) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
        if (fresh) {
          var node = document.importNode(fresh, true);
          region.replaceWith(node);
          if (node.hasAttribute("data-live")) schedule(node); // a finished job's region stops refreshing
        }
      })
      .catch(function () { /* restarting or offline: keep what is shown */ });
  }

  function schedule(region) {
    var ms = Math.max(1000, parseInt(region.getAttribute("data-live") || "5000", 10) || 5000);
    window.setTimeout(function () {
      if (document.body.contains(region)) refresh(region);
    }, ms);
  }

  // --- downloads that need the CSRF header ---------------------------------------------------------------------
  // a[data-download="<file name>"]: a GET with an effect (the audited member export, §20) needs X-CSRF-Token, which
  // a plain link cannot send; the answer is fetched with it and saved through a Blob URL.
  function onDownload(event) {
    var link = event.target.closest("a[data-download]");
    if (!link) return;
    event.preventDefault();
    var status = link.parentNode.querySelector("[data-download-status]");
    function say(text) { if (status) { status.textContent = text; status.hidden = !text; } }
    say("Preparing the download…");
    fetch(link.href, { credentials: "same-origin", headers: { "X-CSRF-Token": CSRF, "Accept": "application/json" } })
      .then(function (r) {
        if (!r.ok) return r.json().then(function (p) { throw new Error((p && p.error && p.error.message) || String(r.status)); }, function () { throw new Error(String(r.status)); });
        return r.blob();
      })
      .then(function (blob) {
        var url = URL.createObjectURL(blob), a = document.createElement("a");
        a.href = url; a.download = link.getAttribute("data-download") || "download"; a.hidden = true;
        document.body.appendChild(a); a.click(); a.remove();
        window.setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
        say("Downloaded " + a.download + ".");
      })
      .catch(function (e) { say("The download failed: " + e.message); });
  }

  document.addEventListener("submit", onSubmit);
  document.addEventListener("click", onDownload);
  document.addEventListener("DOMContentLoaded", function () {
    try {
      var pending = window.sessionStorage.getItem("synapse-flash");
      if (pending) { window.sessionStorage.removeItem("synapse-flash"); flash(pending); }
    } catch (e) { /* private mode */ }
    document.querySelectorAll("[data-live][id]").forEach(schedule);
    document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
  });
})();
