// The sandbox page (/sandbox): posts what a member does to the JSON sandbox endpoints and polls /sandbox/state
// every second, appending the bot's replies as they come. No inline code (CSP); text is only ever set as text.
(function () {
  "use strict";
  var root, stateUrl, emojis, state = null, seen = {}, recentKey = "", commandsKey = "", voiceKey = "";

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function bdi(text) { return el("bdi", "", text); }
  function acting() { return $("sb-as").value; }
  function guild() { return state && state.guilds.length ? state.guilds[0] : { members: [], channels: [], roles: [], voice: [] }; }
  function nameOf(id) {
    var members = guild().members;
    for (var i = 0; i < members.length; i++) if (members[i].user_id === id) return members[i].display_name;
    return id;
  }
  function channelOf(id) {
    var channels = guild().channels;
    for (var i = 0; i < channels.length; i++) if (channels[i].id === id) return channels[i].name;
    return id;
  }
  function status(text, bad) {
    var node = $("sb-status");
    node.textContent = text;
    node.classList.toggle("sb-bad", !!bad);
  }

  // One POST to a sandbox endpoint; a 4xx is shown with the details the API gives (which field, what is valid).
  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!r.ok) {
          var err = data && data.error ? data.error : { message: "HTTP " + r.status };
          var details = Array.isArray(err.details) ? err.details : [];
          var why = details.map(function (f) { return f.field + ": " + (f.message || f.problem); }).join("; ");
          throw new Error((err.message || "Refused") + (why ? " — " + why : ""));
        }
        poll();
        return data;
      });
    });
  }
  function failed(e) { status(e.message || String(e), true); }

  // ---------------------------------------------------------------------------------------------- the feed
  function replyNode(r) {
    var li = el("li", "sb-reply" + (r.ephemeral ? " sb-ephemeral" : ""));
    li.setAttribute("data-id", r.id);
    var meta = el("p", "sb-meta");
    var kind = r.kind === "response" ? "Reply to /" + r.command : r.kind === "followup" ? "Follow-up to /" + r.command : "Bot message";
    meta.appendChild(el("span", "sb-kind", kind));
    meta.appendChild(document.createTextNode(" "));
    if (r.invoked_by) {
      var by = el("span", "", "by ");
      by.appendChild(bdi(nameOf(r.invoked_by)));
      meta.appendChild(by);
      meta.appendChild(document.createTextNode(" "));
    }
    var where = el("span", "", "in #");
    where.appendChild(bdi(channelOf(r.channel_id)));
    meta.appendChild(where);
    meta.appendChild(document.createTextNode(" "));
    var time = el("time", "", (r.timestamp || "").slice(11, 19));
    time.setAttribute("datetime", r.timestamp);
    meta.appendChild(time);
    li.appendChild(meta);
    if (r.ephemeral) {
      var only = el("p", "sb-only", "Only visible to ");
      only.appendChild(bdi(nameOf(r.visible_to)));
      li.appendChild(only);
    }
    if (r.content) li.appendChild(el("p", "sb-content", r.content));
    (r.embeds || []).forEach(function (e) {
      var box = el("div", "sb-embed");
      if (e.title) box.appendChild(el("p", "sb-embed-title", e.title));
      if (e.description) box.appendChild(el("p", "sb-content", e.description));
      if (e.fields && e.fields.length) {
        var dl = el("dl", "sb-fields");
        e.fields.forEach(function (f) {
          var pair = el("div");
          pair.appendChild(el("dt", "", f.name));
          pair.appendChild(el("dd", "", f.value));
          dl.appendChild(pair);
        });
        box.appendChild(dl);
      }
      if (e.footer && e.footer.text) box.appendChild(el("p", "sb-embed-foot", e.footer.text));
      li.appendChild(box);
    });
    return li;
  }
  function renderFeed(replies) {
    var feed = $("sb-feed"), list = feed.querySelector("ol"), empty = feed.querySelector(".sb-empty");
    var atEnd = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 40, grew = false;
    replies.forEach(function (r) {
      var key = JSON.stringify(r);
      if (seen[r.id] === key) return;
      var old = list.querySelector('li[data-id="' + r.id + '"]');
      var node = replyNode(r);
      if (old) old.replaceWith(node); else { list.appendChild(node); grew = true; }
      seen[r.id] = key;
    });
    if (empty && replies.length) empty.remove();
    if (grew && atEnd) feed.scrollTop = feed.scrollHeight;
  }

  // ---------------------------------------------------------------------------------------------- recent messages
  function renderRecent(messages) {
    var me = acting(), key = me + JSON.stringify(messages);
    if (key === recentKey) return;
    recentKey = key;
    var list = $("sb-recent"), focused = document.activeElement, focusKey = focused && focused.getAttribute("data-focus");
    var atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    var fresh = document.createDocumentFragment();
    messages.forEach(function (m) {
      var li = el("li");
      li.setAttribute("data-id", m.id);
      var meta = el("p", "sb-meta"), author = el("b");
      author.appendChild(bdi(m.author_name));
      meta.appendChild(author);
      if (m.bot) { meta.appendChild(document.createTextNode(" ")); meta.appendChild(el("span", "pill", "bot")); }
      var where = el("span", "", " in #");
      where.appendChild(bdi(channelOf(m.channel_id)));
      meta.appendChild(where);
      li.appendChild(meta);
      if (m.content) li.appendChild(el("p", "sb-content", m.content));
      else if (m.embeds) li.appendChild(el("p", "muted", "(" + m.embeds + " embed" + (m.embeds > 1 ? "s" : "") + ")"));
      var row = el("p", "sb-reactions"), offered = emojis.slice();
      m.reactions.forEach(function (r) { if (offered.indexOf(r.emoji) < 0) offered.push(r.emoji); });
      offered.forEach(function (emoji) {
        var r = m.reactions.filter(function (x) { return x.emoji === emoji; })[0];
        var mine = !!r && r.user_ids.indexOf(me) >= 0;
        var button = el("button", "sb-react", emoji + (r ? " " + r.count : ""));
        button.type = "button";
        button.setAttribute("aria-pressed", mine ? "true" : "false");
        button.setAttribute("aria-label", (mine ? "Remove reaction " : "React with ") + emoji + " (" + (r ? r.count : 0) + ") to " + m.author_name);
        button.setAttribute("data-focus", m.id + emoji);
        button.addEventListener("click", function () {
          post("/sandbox/reactions", { user_id: acting(), message_id: m.id, emoji: emoji, remove: mine })
            .then(function () { status((mine ? "Removed " : "Reacted ") + emoji + " as " + nameOf(acting()) + "."); })
            .catch(failed);
        });
        row.appendChild(button);
      });
      li.appendChild(row);
      fresh.appendChild(li);
    });
    list.replaceChildren(fresh);
    if (focusKey) {
      var again = list.querySelector('[data-focus="' + focusKey.replace(/"/g, "") + '"]');
      if (again) again.focus();
    }
    if (atEnd) list.scrollTop = list.scrollHeight;
  }

  // ---------------------------------------------------------------------------------------------- voice
  function renderVoice(voice) {
    var key = JSON.stringify(voice);
    if (key === voiceKey) return;
    voiceKey = key;
    var list = $("sb-in-voice"), fresh = document.createDocumentFragment();
    voice.forEach(function (v) {
      var li = el("li");
      li.appendChild(bdi(nameOf(v.user_id)));
      li.appendChild(document.createTextNode(" in 🔊 "));
      li.appendChild(bdi(channelOf(v.channel_id)));
      fresh.appendChild(li);
    });
    if (!voice.length) fresh.appendChild(el("li", "muted", "Nobody is in voice."));
    list.replaceChildren(fresh);
  }

  // ---------------------------------------------------------------------------------------------- commands
  function commands() { return (state && state.commands) || []; }
  function selected() {
    var path = $("sb-command-name").value;
    return commands().filter(function (c) { return c.path === path; })[0] || null;
  }
  function choiceSelect(id, items) {
    var select = el("select");
    select.id = id;
    items.forEach(function (item) {
      var option = el("option", "", item[1]);
      option.value = item[0];
      select.appendChild(option);
    });
    return select;
  }
  function optionInput(o, id) {
    var g = guild(), blank = o.required ? [] : [["", "—"]];
    if (o.choices && o.choices.length) {
      return choiceSelect(id, blank.concat(o.choices.map(function (c, i) { return [String(i), c.name]; })));
    }
    if (o.type === "boolean") return choiceSelect(id, blank.concat([["true", "true"], ["false", "false"]]));
    if (o.type === "user" || o.type === "mentionable") {
      return choiceSelect(id, blank.concat(g.members.map(function (m) { return [m.user_id, m.display_name]; })));
    }
    if (o.type === "channel") {
      var usable = g.channels.filter(function (c) { return c.type !== "category"; });
      return choiceSelect(id, blank.concat(usable.map(function (c) { return [c.id, "#" + c.name]; })));
    }
    if (o.type === "role") return choiceSelect(id, blank.concat(g.roles.map(function (r) { return [r.id, r.name]; })));
    var input = el("input");
    input.id = id;
    input.type = o.type === "integer" || o.type === "number" ? "number" : "text";
    if (o.type === "integer") input.step = "1";
    if (o.type === "number") input.step = "any";
    input.required = o.required;
    return input;
  }
  function renderOptions() {
    var command = selected(), box = $("sb-options");
    $("sb-command-help").textContent = command ? command.description : "The bot has not registered its commands yet.";
    var fresh = document.createDocumentFragment();
    fresh.appendChild(el("legend", "", "Options"));
    if (!command || !command.options.length) fresh.appendChild(el("p", "muted", "None."));
    (command ? command.options : []).forEach(function (o, i) {
      var id = "sb-opt-" + i, wrap = el("div", "sb-option");
      var label = el("label", "", o.name + (o.required ? " (required)" : "") + " · " + o.type);
      label.htmlFor = id;
      wrap.appendChild(label);
      var input = optionInput(o, id);
      input.setAttribute("data-option", String(i));
      wrap.appendChild(input);
      if (o.description) wrap.appendChild(el("small", "muted", o.description));
      fresh.appendChild(wrap);
    });
    box.replaceChildren(fresh);
  }
  function renderCommands() {
    var list = commands(), key = JSON.stringify(list);
    if (key === commandsKey) return;
    commandsKey = key;
    var select = $("sb-command-name"), keep = select.value;
    select.replaceChildren();
    list.forEach(function (c) {
      var option = el("option", "", "/" + c.path);
      option.value = c.path;
      select.appendChild(option);
    });
    if (keep && list.some(function (c) { return c.path === keep; })) select.value = keep;
    renderOptions();
  }
  function optionValues(command) {
    var values = {};
    command.options.forEach(function (o, i) {
      var input = document.querySelector('[data-option="' + i + '"]');
      if (!input || input.value === "") return;
      var v = input.value;
      if (o.choices && o.choices.length) values[o.name] = o.choices[Number(v)].value;
      else if (o.type === "integer") values[o.name] = parseInt(v, 10);
      else if (o.type === "number") values[o.name] = parseFloat(v);
      else if (o.type === "boolean") values[o.name] = v === "true";
      else values[o.name] = v;
    });
    return values;
  }

  // ---------------------------------------------------------------------------------------------- polling
  var polling = false;
  function poll() {
    if (polling) return;
    polling = true;
    fetch(stateUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        state = data;
        renderCommands();
        renderFeed(data.bot_messages || []);
        renderRecent(data.recent_messages || []);
        renderVoice(guild().voice || []);
      })
      .catch(function () { /* restarting: keep what is shown */ })
      .then(function () { polling = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = document.querySelector("[data-sandbox]");
    if (!root) return;
    stateUrl = root.getAttribute("data-state-url");
    emojis = (root.getAttribute("data-emojis") || "").split(" ").filter(Boolean);
    var seededFeed = root.querySelectorAll("#sb-feed li[data-id]");
    for (var i = 0; i < seededFeed.length; i++) seen[seededFeed[i].getAttribute("data-id")] = "server";
    $("sb-as").addEventListener("change", function () { if (state) renderRecent(state.recent_messages || []); });
    $("sb-command-name").addEventListener("change", renderOptions);
    $("sb-message").addEventListener("submit", function (e) {
      e.preventDefault();
      var content = $("sb-content").value;
      post("/sandbox/messages", { user_id: acting(), channel_id: $("sb-channel").value, content: content })
        .then(function () { $("sb-content").value = ""; status("Posted as " + nameOf(acting()) + "."); })
        .catch(failed);
    });
    $("sb-command").addEventListener("submit", function (e) {
      e.preventDefault();
      var command = selected();
      if (!command) { status("The bot has not registered its commands yet.", true); return; }
      status("Running /" + command.path + " as " + nameOf(acting()) + "…");
      post("/sandbox/commands", { user_id: acting(), command: command.path, options: optionValues(command), channel_id: $("sb-channel").value })
        .then(function (answer) {
          status("/" + command.path + " answered" + (answer && answer.ephemeral ? " (only " + nameOf(acting()) + " sees it)." : "."));
        })
        .catch(failed);
    });
    $("sb-voice").addEventListener("submit", function (e) {
      e.preventDefault();
      post("/sandbox/voice", { user_id: acting(), channel_id: $("sb-voice-channel").value })
        .then(function () { status(nameOf(acting()) + " joined voice."); })
        .catch(failed);
    });
    $("sb-leave").addEventListener("click", function () {
      post("/sandbox/voice", { user_id: acting(), channel_id: null })
        .then(function () { status(nameOf(acting()) + " left voice."); })
        .catch(failed);
    });
    poll();
    setInterval(function () { if (!document.hidden) poll(); }, 1000);
  });
})();
