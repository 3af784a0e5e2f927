// afterimage view: browse the rows embedded in this page. No network: everything is in #afterimage-data.
(function () {
  "use strict";
  // The index (columns, strings) comes before this script and the rows after it, so the list is usable
  // while the browser still reads the rows; what needs a row's text waits for them (whenRows).
  var D = JSON.parse(document.getElementById("afterimage-index").textContent);
  var ROWS = null, waiting = [];
  function whenRows(fn) { if (ROWS) fn(); else waiting.push(fn); }
  var S = D.strings, C = D.cols, N = C.id.length, META = D.meta;
  var GRADES = ["perfect", "good", "needs_improvement", "bad", "not_acceptable"];
  var ROW_H = 54, OVERSCAN = 8;
  var $ = function (id) { return document.getElementById(id); };
  var list = $("list"), spacer = $("spacer"), detail = $("detail");
  var order = [];          // indices of the rows that pass the filters, in display order
  var selected = -1;       // index of the row shown in the detail pane
  var haystack = null;     // lower-cased searchable text per row, built on the first search
  var lastFilterMs = null; // how long the last filtering took (read by the benchmark)
  var byId = new Map();
  for (var i = 0; i < N; i++) byId.set(C.id[i], i);

  // ---- small DOM helpers (text is always set as text: rows are data, never markup) ----
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") el.textContent = attrs[k];
      else if (k === "cls") el.className = attrs[k];
      else el.setAttribute(k, attrs[k]);
    }
    for (var j = 2; j < arguments.length; j++) {
      var c = arguments[j];
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return el;
  }
  function str(v) { return v === null || v === undefined ? null : S[v]; }
  function inflate(v) {  // replace {"$s": n} references into the string table
    if (Array.isArray(v)) return v.map(inflate);
    if (v && typeof v === "object") {
      var keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === "$s") return S[v.$s];
      var out = {};
      for (var j = 0; j < keys.length; j++) out[keys[j]] = inflate(v[keys[j]]);
      return out;
    }
    return v;
  }
  function fmt(x, d) { return x === null || x === undefined ? "–" : Number(x).toFixed(d === undefined ? 3 : d); }
  function grade(gi) { var g = str(gi); return h("span", {cls: "badge g-" + (g || "none"), text: g ? g.replace("_", " ") : "ungraded"}); }
  function text(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) return content.map(function (p) { return p && p.text ? p.text : ""; }).join(" ");
    return content === null || content === undefined ? "" : JSON.stringify(content);
  }
  function pretty(s) {
    if (typeof s !== "string") return JSON.stringify(s, null, 2);
    try { return JSON.stringify(JSON.parse(s), null, 2); } catch (e) { return s; }
  }
  function asMessage(m) {  // the OpenAI shape; ShareGPT {from, value} read too
    if (m && typeof m === "object" && !m.role && m.from !== undefined) {
      var roles = {human: "user", gpt: "assistant", system: "system", observation: "tool", function_call: "assistant"};
      return {role: roles[m.from] || String(m.from), content: m.value};
    }
    if (m && typeof m === "object") return m;
    return {role: "assistant", content: m};
  }
  function messagesOf(row) {
    var keys = ["conversations", "messages", "prompt"];
    for (var j = 0; j < keys.length; j++) {
      var v = row[keys[j]];
      if (Array.isArray(v)) return v.map(asMessage);
      if (typeof v === "string" && keys[j] === "prompt") return [{role: "user", content: v}];
    }
    return [];
  }
  function answers(v) { return v === null || v === undefined ? null : (Array.isArray(v) ? v : [v]).map(asMessage); }

  // ---- filters ----
  function fill(select, values) {
    values.forEach(function (v) { select.appendChild(h("option", {value: v, text: v.replace(/_/g, " ")})); });
  }
  function distinct(col) {
    var seen = new Set();
    for (var j = 0; j < N; j++) { var v = C[col][j]; if (Array.isArray(v)) v.forEach(function (x) { seen.add(x); }); else if (v !== null) seen.add(v); }
    return Array.from(seen).map(function (x) { return S[x]; }).sort();
  }
  var grades = distinct("grade");
  fill($("f-grade"), GRADES.filter(function (g) { return grades.indexOf(g) >= 0; }));
  if (C.grade.some(function (g) { return g === null; })) fill($("f-grade"), ["ungraded"]);
  fill($("f-model"), distinct("model"));
  fill($("f-ended"), distinct("ended"));
  var toolNames = distinct("tools");
  fill($("f-tool"), toolNames);
  $("l-tool").hidden = !toolNames.length;
  var kindSelect = $("f-kind");
  distinct("kind").forEach(function (k) { kindSelect.insertBefore(h("option", {value: k, text: k}), kindSelect.lastElementChild); });
  distinct("persona").slice(0, 5000).forEach(function (p) { $("l-persona").appendChild(h("option", {value: p})); });
  distinct("chunks").slice(0, 5000).forEach(function (c) { $("l-chunk").appendChild(h("option", {value: c})); });

  function num(id) { var v = $(id).value; return v === "" ? null : Number(v); }
  function matchingStrings(needle) {  // string-table indices whose text contains the needle
    var hit = new Set();
    for (var j = 0; j < S.length; j++) if (S[j].toLowerCase().indexOf(needle) >= 0) hit.add(j);
    return hit;
  }
  function buildHaystack() {
    haystack = new Array(N);
    for (var j = 0; j < N; j++) {
      var row = ROWS[j], parts = [C.id[j]], msgs = messagesOf(row);
      var pair = [answers(row.chosen), answers(row.rejected)];
      pair.forEach(function (side) { if (side) msgs = msgs.concat(side); });
      for (var m = 0; m < msgs.length; m++) {
        parts.push(text(msgs[m].content));
        if (msgs[m].tool_calls) parts.push(JSON.stringify(msgs[m].tool_calls));
      }
      haystack[j] = parts.join("\n").toLowerCase();
    }
  }
  function apply(keepScroll) {
    var t0 = performance.now();
    var q = $("f-search").value.trim().toLowerCase();
    var g = $("f-grade").value, model = $("f-model").value, ended = $("f-ended").value, kind = $("f-kind").value;
    var tool = $("f-tool").value;
    var smin = num("f-score-min"), smax = num("f-score-max"), tmin = num("f-turns-min"), tmax = num("f-turns-max");
    var cmin = num("f-chars-min"), cmax = num("f-chars-max");
    var persona = $("f-persona").value.trim().toLowerCase(), chunk = $("f-chunk").value.trim().toLowerCase();
    var personaHits = persona ? matchingStrings(persona) : null, chunkHits = chunk ? matchingStrings(chunk) : null;
    if (q && !ROWS) { $("count").textContent = "Reading the rows…"; whenRows(function () { apply(keepScroll); }); return; }
    if (q && !haystack) buildHaystack();
    var out = [];
    for (var j = 0; j < N; j++) {
      if (g && (g === "ungraded" ? C.grade[j] !== null : str(C.grade[j]) !== g)) continue;
      var s = C.score[j];
      if (smin !== null && (s === null || s < smin)) continue;
      if (smax !== null && (s === null || s > smax)) continue;
      if (tmin !== null && C.turns[j] < tmin) continue;
      if (tmax !== null && C.turns[j] > tmax) continue;
      if (cmin !== null && C.chars[j] < cmin) continue;
      if (cmax !== null && C.chars[j] > cmax) continue;
      if (model && str(C.model[j]) !== model) continue;
      if (ended && str(C.ended[j]) !== ended) continue;
      if (kind && (kind === "dup" ? !C.dup[j] : str(C.kind[j]) !== kind)) continue;
      if (tool && !C.tools[j].some(function (c) { return S[c] === tool; })) continue;
      if (personaHits && (C.persona[j] === null || !personaHits.has(C.persona[j]))) continue;
      if (chunkHits && !C.chunks[j].some(function (c) { return chunkHits.has(c); })) continue;
      if (q && haystack[j].indexOf(q) < 0) continue;
      out.push(j);
    }
    sortRows(out);
    order = out;
    if (!keepScroll) list.scrollTop = 0;
    spacer.style.height = order.length * ROW_H + "px";
    $("count").textContent = order.length.toLocaleString() + " of " + N.toLocaleString() + " conversations" +
      (META.sampled ? " (a sample)" : "");
    render(true);
    lastFilterMs = performance.now() - t0;
  }
  function sortRows(rows) {
    var key = $("f-sort").value, desc = $("f-desc").checked ? -1 : 1;
    if (key === "line") { if (desc < 0) rows.reverse(); return; }
    var value;
    if (key === "grade") value = function (j) { var g = GRADES.indexOf(str(C.grade[j])); return g < 0 ? null : -g; };
    else if (key === "id") value = function (j) { return C.id[j]; };
    else value = function (j) { return C[key][j]; };
    rows.sort(function (a, b) {
      var x = value(a), y = value(b);
      if (x === y) return a - b;
      if (x === null) return 1;   // rows without the value go last either way
      if (y === null) return -1;
      return (x < y ? -1 : 1) * desc;
    });
  }

  // ---- the virtualised list: only the rows in view exist in the DOM ----
  var rendered = {from: -1, to: -1};
  function render(force) {
    var from = Math.max(0, Math.floor(list.scrollTop / ROW_H) - OVERSCAN);
    var to = Math.min(order.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW_H) + OVERSCAN);
    if (!force && from === rendered.from && to === rendered.to) return;
    rendered = {from: from, to: to};
    var frag = document.createDocumentFragment();
    for (var k = from; k < to; k++) frag.appendChild(item(k));
    spacer.replaceChildren(frag);
  }
  function item(k) {
    var j = order[k], kind = str(C.kind[j]);
    var el = h("div", {cls: "item" + (j === selected ? " on" : ""), "data-row": C.id[j]},
      h("div", {cls: "l1"}, h("span", {cls: "rid", text: C.id[j]}), grade(C.grade[j]),
        h("span", {text: fmt(C.score[j], 2)}), h("span", {cls: "muted", text: C.turns[j] + " turns"}),
        kind !== "conversation" ? h("span", {cls: "badge k-" + kind, text: kind}) : null,
        C.dup[j] ? h("span", {cls: "badge k-dup", text: "dup"}) : null),
      h("div", {cls: "l2", text: C.title[j]}));
    el.style.top = k * ROW_H + "px";
    el.addEventListener("click", function () { select(j); });
    return el;
  }
  list.addEventListener("scroll", function () { requestAnimationFrame(function () { render(false); }); });
  window.addEventListener("resize", function () { render(true); });

  function select(j, scroll) {
    selected = j;
    showRow(j);
    var k = order.indexOf(j);
    if (scroll && k >= 0) {
      var top = k * ROW_H;
      if (top < list.scrollTop) list.scrollTop = top;
      else if (top + ROW_H > list.scrollTop + list.clientHeight) list.scrollTop = top + ROW_H - list.clientHeight;
    }
    render(true);
    if (location.hash !== "#row=" + encodeURIComponent(C.id[j])) history.replaceState(null, "", "#row=" + encodeURIComponent(C.id[j]));
  }
  function step(delta) {
    if (!order.length) return;
    var k = order.indexOf(selected);
    k = k < 0 ? (delta > 0 ? 0 : order.length - 1) : Math.min(order.length - 1, Math.max(0, k + delta));
    select(order[k], true);
  }

  // ---- one conversation ----
  function bubble(m) {
    var role = m.role || "assistant", cls = ["user", "assistant", "system", "tool"].indexOf(role) >= 0 ? role : "assistant";
    var who = role + (m.name ? " · " + m.name : "") + (m.tool_call_id ? " · result of " + m.tool_call_id : "");
    var b = h("div", {cls: "bubble b-" + cls, "data-role": role}, h("span", {cls: "who", text: who}));
    if (m.reasoning_content) b.appendChild(h("details", null, h("summary", {text: "reasoning"}), h("pre", {text: m.reasoning_content})));
    var content = text(m.content);
    if (content) b.appendChild(document.createTextNode(role === "tool" ? pretty(content) : content));
    (m.tool_calls || []).forEach(function (call) {
      var fn = call["function"] || call;
      b.appendChild(h("div", {cls: "call", "data-call": call.id || ""},
        h("b", {text: "→ " + (fn.name || "tool")}), h("span", {cls: "muted", text: call.id ? "  " + call.id : ""}),
        h("pre", {text: pretty(fn.arguments === undefined ? "" : fn.arguments)})));
    });
    return b;
  }
  function table(rows) {
    var t = h("table");
    rows.forEach(function (r) { if (r[1] !== null && r[1] !== undefined && r[1] !== "") t.appendChild(h("tr", null, h("td", {text: r[0]}), h("td", null, r[1]))); });
    return t;
  }
  function facts(j, row) {
    var meta = row.metadata || {}, ev = row.evaluation || {}, usage = meta.usage || {}, models = meta.models || {};
    var f = h("aside", {cls: "facts"});
    f.appendChild(h("h4", {text: "Verdict"}));
    f.appendChild(table([["grade", grade(C.grade[j])], ["final_score", fmt(C.score[j])], ["judge", ev.judge_model]]));
    var crit = Object.keys(ev).filter(function (k) { return ev[k] && typeof ev[k] === "object" && "score" in ev[k]; });
    if (crit.length) {
      var t = h("table", {cls: "criteria"});
      crit.forEach(function (k) {
        var c = ev[k];
        t.appendChild(h("tr", null, h("td", {text: k}), h("td", null, c.applicable === false ? "n/a" : fmt(c.score, 2),
          c.feedback ? h("div", {cls: "fb", text: c.feedback}) : null)));
      });
      f.appendChild(t);
    }
    f.appendChild(h("h4", {text: "Conversation"}));
    f.appendChild(table([["id", C.id[j]], ["line", String(C.line[j])], ["kind", str(C.kind[j])],
      ["persona", str(C.persona[j])], ["turns", meta.planned_turns ? C.turns[j] + " of " + meta.planned_turns + " planned" : String(C.turns[j])],
      ["ended_by", meta.ended_by], ["respondent", models.respondent], ["user model", models.correspondent]]));
    f.appendChild(h("h4", {text: "Usage"}));
    f.appendChild(table([["calls", usage.calls], ["tokens in", usage.prompt_tokens], ["tokens out", usage.completion_tokens],
      ["cost", usage.cost_usd === undefined ? null : (usage.cost_usd === null ? "unpriced" : "$" + fmt(usage.cost_usd, 5))]]));
    var hits = meta.retrieval && meta.retrieval.hits;
    if (hits && hits.length) {
      f.appendChild(h("h4", {text: "Retrieval hits"}));
      var ht = h("table", {cls: "hits"});
      hits.forEach(function (hit) { ht.appendChild(h("tr", null, h("td", {text: hit.id}), h("td", {text: fmt(hit.score, 3)}))); });
      f.appendChild(ht);
      if (meta.retrieval.query) f.appendChild(h("div", {cls: "fb", text: "query: " + meta.retrieval.query}));
    }
    var chunks = C.chunks[j].map(str);
    if (chunks.length) { f.appendChild(h("h4", {text: "Context ids"})); f.appendChild(h("div", {cls: "fb", text: chunks.join(", ")})); }
    [["instruction_context", "Context (questions)"], ["response_context", "Context (answers)"]].forEach(function (pair) {
      var v = row[pair[0]];
      if (v && !(pair[0] === "response_context" && v === row.instruction_context)) {
        f.appendChild(h("details", null, h("summary", {text: pair[1]}), h("pre", {text: v})));
      }
    });
    var metrics = meta.metrics || {};
    if (metrics.duplicate) f.appendChild(h("p", {cls: "fb", text: metrics.duplicate.kind + " duplicate of " + metrics.duplicate.of + " (similarity " + fmt(metrics.duplicate.similarity, 2) + ")"}));
    if (metrics.issues && metrics.issues.length) f.appendChild(h("p", {cls: "fb", text: "issues: " + metrics.issues.join(", ")}));
    if (meta.preference) { f.appendChild(h("h4", {text: "Preference"})); f.appendChild(h("pre", {text: JSON.stringify(meta.preference, null, 2)})); }
    var whole = h("details", null, h("summary", {text: "Whole row (JSON)"}), h("pre"));
    whole.addEventListener("toggle", function () {  // written when opened: a long row costs nothing until then
      if (whole.open && !whole.lastChild.textContent) whole.lastChild.textContent = JSON.stringify(row, null, 2);
    });
    f.appendChild(whole);
    return f;
  }
  function showRow(j) {
    if (!ROWS) { detail.replaceChildren(h("p", {cls: "muted empty", text: "Reading the rows…"})); whenRows(function () { if (selected === j) showRow(j); }); return; }
    var row = inflate(ROWS[j]);
    var conv = h("div", {cls: "conv", id: "conversation"}, h("h3", {text: C.id[j]}));
    messagesOf(row).forEach(function (m) { conv.appendChild(bubble(m)); });
    var chosen = answers(row.chosen), rejected = answers(row.rejected);
    if (chosen || rejected) {
      var side = function (name, msgs) {
        var s = h("div", {cls: "side " + name, "data-side": name}, h("h4", {text: name}));
        (msgs || []).forEach(function (m) { s.appendChild(bubble(m)); });
        return s;
      };
      conv.appendChild(h("div", {cls: "pairs"}, side("chosen", chosen), side("rejected", rejected)));
    }
    detail.replaceChildren(conv, facts(j, row));
    detail.scrollTop = 0;
  }

  // ---- rejected items (from the run's ledger) ----
  function showRejected() {
    var page = $("rejected");
    if (page.childElementCount) return;
    page.appendChild(h("h2", {text: "Rejected items" + (META.ledger ? " (from " + META.ledger + ")" : "")}));
    if (!D.rejected.length) { page.appendChild(h("p", {cls: "muted", text: META.ledger ? "The ledger records no rejected item." : "No ledger beside the input, so no rejected items to show."})); return; }
    var t = h("table", {id: "rejected-table"}, h("tr", null, h("th", {text: "command"}), h("th", {text: "item"}), h("th", {text: "id"}),
      h("th", {text: "cause"}), h("th", {text: "attempts"}), h("th", {text: "cost"}), h("th", {text: "error"})));
    D.rejected.forEach(function (r) {
      var usage = r.usage || {};
      t.appendChild(h("tr", {"data-cause": r.cause}, h("td", {text: r.command || ""}), h("td", {text: String(r.item)}), h("td", {text: r.id}),
        h("td", {text: r.cause}), h("td", {text: String(r.attempts)}), h("td", {text: usage.cost_usd === undefined || usage.cost_usd === null ? "–" : "$" + fmt(usage.cost_usd, 5)}),
        h("td", {cls: "err", text: r.error})));
    });
    page.appendChild(t);
  }

  // ---- pages, hash routes and keys ----
  function route() {
    var hash = decodeURIComponent(location.hash.slice(1));
    var page = hash === "overview" || hash === "rejected" ? hash : "rows";
    $("browse").hidden = page !== "rows";
    $("overview").hidden = page !== "overview";
    $("rejected").hidden = page !== "rejected";
    ["rows", "overview", "rejected"].forEach(function (p) { $("tab-" + p).classList.toggle("on", p === page); });
    if (page === "rejected") showRejected();
    if (hash.indexOf("row=") === 0) jump(hash.slice(4));
  }
  function jump(id) {
    var j = byId.get(id);
    if (j === undefined) { $("count").textContent = "no row with id " + id + (META.sampled ? " in this sample" : ""); return; }
    if (order.indexOf(j) < 0) { clearFilters(); }
    if (selected !== j) select(j, true);
  }
  function clearFilters() {
    document.querySelectorAll("#filters input, #filters select").forEach(function (el) {
      if (el.type === "checkbox") el.checked = false; else if (el.tagName === "SELECT") el.selectedIndex = 0; else el.value = "";
    });
    apply();
  }
  window.addEventListener("hashchange", route);
  var timer = null;
  document.querySelectorAll("#filters input, #filters select").forEach(function (el) {
    if (el.id === "f-jump") return;
    el.addEventListener(el.tagName === "SELECT" || el.type === "checkbox" ? "change" : "input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { apply(); }, el.id === "f-search" ? 150 : 60);
    });
  });
  $("f-jump").addEventListener("keydown", function (e) { if (e.key === "Enter") { location.hash = "row=" + encodeURIComponent(this.value.trim()); } });
  $("f-clear").addEventListener("click", clearFilters);
  document.addEventListener("keydown", function (e) {
    var t = e.target, typing = t && (t.tagName === "SELECT" || t.tagName === "TEXTAREA" ||
      (t.tagName === "INPUT" && t.type !== "checkbox"));  // j/k still walk the list after ticking a box
    if (e.key === "Escape" && typing) { t.blur(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j") { if ($("browse").hidden) location.hash = "rows"; step(1); e.preventDefault(); }
    else if (e.key === "k") { if ($("browse").hidden) location.hash = "rows"; step(-1); e.preventDefault(); }
    else if (e.key === "/") { location.hash = location.hash.indexOf("row=") >= 0 ? location.hash : "rows"; $("f-search").focus(); e.preventDefault(); }
  });

  if (META.sampled) {
    var banner = $("banner");
    banner.hidden = false;
    banner.textContent = "Showing a uniform sample of " + N.toLocaleString() + " of " + META.rows.toLocaleString() +
      " rows (--max-rows " + META.max_rows.toLocaleString() + "). The overview counts all " + META.rows.toLocaleString() + " rows.";
  }
  $("tab-rejected").textContent = "Rejected (" + D.rejected.length.toLocaleString() + ")";
  apply();
  route();
  var listShownMs = performance.now();
  function readRows() {
    ROWS = JSON.parse(document.getElementById("afterimage-rows").textContent);
    window.__afterimageReady = true;
    waiting.splice(0).forEach(function (fn) { fn(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", readRows); else readRows();
  // For scripts driving the page (the tests, the benchmark): what the list holds, and how fast it got there.
  window.afterimageView = {ids: function () { return order.map(function (j) { return C.id[j]; }); },
    lastFilterMs: function () { return lastFilterMs; }, listShownMs: function () { return listShownMs; }};
})();
