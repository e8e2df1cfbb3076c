"use strict";
// Renders the rewardkit report from the JSON embedded in #rk-data. Every string from a model or a
// dataset reaches the page through text nodes (textContent / createTextNode), never as markup.
(function () {
  const DATA = JSON.parse(document.getElementById("rk-data").textContent);
  const PAGE = 100;
  const SVG = "http://www.w3.org/2000/svg";
  const state = { page: 0, sort: null, desc: false, open: new Set(), shown: [] };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const byId = (id) => document.getElementById(id);
  const pct = (x) => (x === null || x === undefined ? "n/a" : (100 * x).toFixed(1) + "%");
  const num = (x, digits) => (x === null || x === undefined ? "n/a" : Number(x).toFixed(digits));
  const int = (x) => (x === null || x === undefined ? "n/a" : Number(x).toLocaleString("en-US"));
  const comboLabel = (s) => s.suite + " [" + s.model + "]";

  function contentText(content) {
    if (content === null || content === undefined) return "";
    if (typeof content === "string") return content;
    return content.map((part) => (part && part.text !== undefined ? String(part.text) : JSON.stringify(part))).join("");
  }

  function histogram(counts) {
    const width = 220, height = 60, bar = width / counts.length, top = Math.max(1, ...counts);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "hist");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height + 12);
    counts.forEach((count, i) => {
      const h = Math.round((height * count) / top);
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", i * bar + 1);
      rect.setAttribute("y", height - h);
      rect.setAttribute("width", bar - 2);
      rect.setAttribute("height", h);
      const title = document.createElementNS(SVG, "title");
      title.textContent = (i / counts.length).toFixed(1) + "-" + ((i + 1) / counts.length).toFixed(1) + ": " + count;
      rect.appendChild(title);
      svg.appendChild(rect);
    });
    for (const [x, label] of [[0, "0"], [width - 8, "1"]]) {
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", x);
      text.setAttribute("y", height + 10);
      text.textContent = label;
      svg.appendChild(text);
    }
    return svg;
  }

  function summaryCard(s) {
    const [lo, hi] = s.pass_rate_ci95;
    const facts = [
      ["rows", int(s.rows) + " (" + int(s.variants) + " responses)"],
      ["passed / failed / errored", s.passed + " / " + s.failed + " / " + s.errored],
      ["mean reward", num(s.mean_reward, 3)],
    ];
    const atK = Object.entries(s.pass_at_k || {}).map(([k, v]) => "pass@" + k + " " + num(v, 3));
    const hatK = Object.entries(s.pass_hat_k || {}).map(([k, v]) => "pass^" + k + " " + num(v, 3));
    if (atK.length) facts.push(["pass@k", atK.join("  ")], ["pass^k", hatK.join("  ")]);
    const u = s.usage;
    if (u) {
      facts.push(["tokens (prompt / completion)", int(u.prompt_tokens) + " / " + int(u.completion_tokens)]);
      if (u.cost !== null && u.cost !== undefined) facts.push(["cost", num(u.cost, 4)]);
      if (u.latency_mean_s !== null && u.latency_mean_s !== undefined) {
        facts.push(["latency of a response's request", "mean " + num(u.latency_mean_s, 2) + " s, p95 " + num(u.latency_p95_s, 2) + " s"]);
      }
      if (u.truncated) facts.push(["hit max_tokens", u.truncated + " responses"]);
    }
    const card = el(
      "div",
      { class: "card", "data-combo": s.key },
      el("h2", {}, comboLabel(s), " ", el("span", { class: "muted" }, s.dataset)),
      el("div", { class: "big" }, pct(s.pass_rate), " ", el("span", { class: "muted" }, "pass rate (95% CI " + pct(lo) + "-" + pct(hi) + ")")),
      el("table", {}, el("tbody", {}, facts.map(([k, v]) => el("tr", {}, el("td", { class: "muted" }, k), el("td", {}, v))))),
      el("div", { class: "muted" }, "rewards of every response"),
      histogram(s.histogram)
    );
    for (const [field, values] of Object.entries(s.by_group || {})) {
      card.appendChild(el("h3", {}, "by " + field));
      card.appendChild(
        el("table", {}, el("tbody", {}, Object.entries(values).map(([value, fig]) =>
          el("tr", {}, el("td", {}, value), el("td", {}, fig.passed + "/" + fig.rows), el("td", {}, pct(fig.pass_rate)))
        )))
      );
    }
    const c = s.comparison;
    if (c) card.appendChild(comparisonBlock(c));
    return card;
  }

  function comparisonBlock(c) {
    const [lo, hi] = c.reward_delta_ci95 || [null, null];
    const verdict = c.significant_regression ? el("b", { class: "fail" }, "significant regression")
      : c.significant_improvement ? el("b", { class: "pass" }, "significant improvement")
      : el("span", { class: "muted" }, "no significant change");
    return el("div", { class: "comparison" },
      el("h3", {}, "against the baseline ", el("span", { class: "muted" }, c.baseline)),
      el("table", {}, el("tbody", {},
        el("tr", {}, el("td", { class: "muted" }, "paired rows"), el("td", {}, int(c.paired))),
        el("tr", {}, el("td", { class: "muted" }, "pass → fail / fail → pass"),
          el("td", {}, el("span", { class: "fail" }, String(c.regressions)), " / ", el("span", { class: "pass" }, String(c.improvements)))),
        el("tr", {}, el("td", { class: "muted" }, "McNemar exact p"), el("td", {}, num(c.mcnemar_p, 4))),
        el("tr", {}, el("td", { class: "muted" }, "mean reward Δ (95% bootstrap CI)"),
          el("td", {}, num(c.reward_delta, 3) + " (" + num(lo, 3) + " to " + num(hi, 3) + ")")),
        el("tr", {}, el("td", { class: "muted" }, "verdict"), el("td", {}, verdict))
      ))
    );
  }

  function rowReason(row) {
    if (row.error) return row.error;
    const bad = row.variants.find((v) => v.error || !v.passed);
    const v = bad || row.variants[0];
    return v ? v.error || v.reason || "" : "";
  }

  function haystack(row) {
    if (row._text === undefined) {
      const parts = [row.id, row.error_type || "", row.error || ""];
      for (const m of row.prompt) parts.push(contentText(m.content));
      for (const v of row.variants) {
        parts.push(v.reason || "", v.error_type || "", v.error || "");
        if (v.response) parts.push(contentText(v.response.content), JSON.stringify(v.response.tool_calls || ""));
      }
      row._text = parts.join("\n").toLowerCase();
    }
    return row._text;
  }

  function message(m) {
    const head = el("div", { class: "role" }, m.role, m.name ? " (" + m.name + ")" : "", m.tool_call_id ? " → result of " + m.tool_call_id : "");
    const box = el("div", { class: "msg " + m.role }, head);
    const text = contentText(m.content);
    if (text) box.appendChild(el("pre", {}, text));
    for (const call of m.tool_calls || []) {
      const fn = call.function || {};
      box.appendChild(el("pre", { class: "muted" }, "tool call " + (call.id || "") + ": " + (fn.name || "?") + "(" + (typeof fn.arguments === "string" ? fn.arguments : JSON.stringify(fn.arguments)) + ")"));
    }
    return box;
  }

  function variantBox(v, row) {
    const status = v.error ? "error" : v.passed ? "pass" : "fail";
    const facts = [];
    const st = v.stats;
    if (st) {
      if (st.finish_reason) facts.push("finish: " + st.finish_reason + (st.finish_reason === "length" ? " (hit max_tokens)" : ""));
      if (st.prompt_tokens !== null || st.completion_tokens !== null) {
        facts.push("tokens: " + int(st.prompt_tokens) + " prompt + " + int(st.completion_tokens) + " completion" + (st.estimated ? " (share of a request with several responses)" : ""));
      }
      if (st.latency_s !== null) facts.push("latency: " + num(st.latency_s, 2) + " s");
      if (st.cost !== null) facts.push("cost: " + num(st.cost, 6));
    }
    const box = el("div", { class: "variant" },
      el("h4", {}, "response " + v.index + " ", el("span", { class: status }, status),
        v.score !== null && v.score !== undefined ? " score " + num(v.score, 3) : "",
        v.baseline_score !== undefined && v.baseline_score !== null ? el("span", { class: "muted" }, " (baseline " + num(v.baseline_score, 3) + ")") : ""),
      facts.length ? el("div", { class: "muted" }, facts.join(" · ")) : null,
      v.error ? el("pre", { class: "error" }, v.error_type + ": " + v.error) : null,
      v.reason ? el("div", {}, el("span", { class: "muted" }, "reason: "), v.reason) : null
    );
    if (v.response) box.appendChild(message(v.response));
    for (const step of v.steps || []) box.appendChild(message(step));
    const metrics = Object.entries(v.metrics || {});
    if (metrics.length) {
      box.appendChild(el("table", { class: "metrics" }, el("tbody", {}, metrics.map(([name, m]) =>
        el("tr", {}, el("td", {}, name), el("td", {}, num(m.score, 3)), el("td", { class: "muted" }, m.reason || ""))
      ))));
    }
    return box;
  }

  function detail(row, columns) {
    const cell = el("td", { colspan: columns },
      el("div", { class: "muted" }, "threshold " + row.threshold + " · " + row.aggregate + " of " + row.variants.length + " response(s)",
        row.baseline ? " · baseline " + row.baseline.status + " " + num(row.baseline.reward, 3) : ""),
      row.error ? el("pre", { class: "error" }, row.error_type + ": " + row.error) : null,
      el("h4", {}, "prompt"),
      row.prompt.map(message),
      row.variants.map((v) => variantBox(v, row))
    );
    return el("tr", { class: "detail", "data-detail": row.id }, cell);
  }

  function columns() {
    const cols = [
      ["status", "status"], ["id", "row id"], ["reward", "reward"], ["scores", "score per response"], ["reason", "reason"],
    ];
    if (DATA.summaries.length > 1) cols.splice(1, 0, ["combo", "suite [model]"]);
    if (DATA.baseline) cols.splice(3, 0, ["delta", "Δ reward"], ["change", "vs baseline"]);
    return cols;
  }

  function cellFor(key, row) {
    switch (key) {
      case "status": return el("td", { class: row.status }, row.status);
      case "combo": return el("td", {}, comboLabel(DATA.summaries[row.combo]));
      case "id": return el("td", {}, row.id);
      case "reward": return el("td", {}, num(row.reward, 3));
      case "scores": return el("td", {}, row.variants.map((v) =>
        el("span", { class: "chip " + (v.error ? "error" : v.passed ? "pass" : "fail"), title: v.reason || v.error || "" },
          v.score === null || v.score === undefined ? "err" : num(v.score, 2))));
      case "delta": return el("td", { class: row.delta < 0 ? "delta-neg" : row.delta > 0 ? "delta-pos" : "" },
        row.delta === null || row.delta === undefined ? "" : (row.delta > 0 ? "+" : "") + num(row.delta, 3));
      case "change": return el("td", { class: row.change === "regressed" ? "fail" : row.change === "improved" ? "pass" : "muted" }, row.change || "");
      case "reason": return el("td", { class: "reason", title: rowReason(row) }, rowReason(row));
    }
    return el("td", {});
  }

  function sortValue(key, row) {
    if (key === "reward") return row.reward === null ? -1 : row.reward;
    if (key === "delta") return row.delta === null || row.delta === undefined ? 0 : row.delta;
    if (key === "combo") return row.combo;
    if (key === "scores") return row.variants.filter((v) => v.passed).length;
    if (key === "reason") return rowReason(row);
    return row[key] || "";
  }

  function filtered() {
    const query = byId("rk-search").value.trim().toLowerCase();
    const status = byId("rk-status").value;
    const combo = byId("rk-combo").value;
    const change = byId("rk-change").value;
    const groups = Array.from(document.querySelectorAll("select[data-group]")).filter((s) => s.value !== "");
    let rows = DATA.rows.filter((row) =>
      (!status || row.status === status) &&
      (combo === "" || String(row.combo) === combo) &&
      (!change || row.change === change) &&
      groups.every((s) => row.group[s.dataset.group] === s.value) &&
      (!query || haystack(row).includes(query))
    );
    if (state.sort) {
      const key = state.sort, sign = state.desc ? -1 : 1;
      rows = rows.slice().sort((a, b) => {
        const x = sortValue(key, a), y = sortValue(key, b);
        return x < y ? -sign : x > y ? sign : 0;
      });
    }
    return rows;
  }

  function render() {
    const cols = columns();
    const rows = filtered();
    state.shown = rows;
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE;
    const body = byId("rk-rows");
    body.replaceChildren();
    // Only one page of rows is in the DOM, and a row's conversation only once it is opened.
    for (const row of rows.slice(start, start + PAGE)) {
      const tr = el("tr", { class: "row", "data-row": row.id, tabindex: 0 }, cols.map(([key]) => cellFor(key, row)));
      tr.addEventListener("click", () => toggle(row, tr, cols.length));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") toggle(row, tr, cols.length); });
      body.appendChild(tr);
      if (state.open.has(row)) tr.after(detail(row, cols.length));
    }
    byId("rk-count").textContent = rows.length + " of " + DATA.rows.length + " rows";
    byId("rk-page").textContent = rows.length ? "rows " + (start + 1) + "-" + Math.min(start + PAGE, rows.length) + " of " + rows.length : "no rows match";
    byId("rk-prev").disabled = state.page === 0;
    byId("rk-next").disabled = state.page >= pages - 1;
  }

  function toggle(row, tr, span) {
    if (state.open.has(row)) {
      state.open.delete(row);
      const next = tr.nextElementSibling;
      if (next && next.classList.contains("detail")) next.remove();
    } else {
      state.open.add(row);
      tr.after(detail(row, span));
    }
  }

  function header() {
    const head = byId("rk-head");
    head.replaceChildren(...columns().map(([key, label]) => {
      const arrow = state.sort === key ? (state.desc ? " ▼" : " ▲") : "";
      const th = el("th", { "data-sort": key }, label + arrow);
      th.addEventListener("click", () => {
        state.desc = state.sort === key ? !state.desc : false;
        state.sort = key;
        header();
        render();
      });
      return th;
    }));
  }

  function setup() {
    document.title = DATA.title;
    byId("rk-title").textContent = DATA.title;
    if (DATA.gate) {
      const gate = byId("rk-gate");
      gate.textContent = DATA.gate.line;
      gate.className = "gate " + (DATA.gate.met ? "ok" : "bad");
    }
    byId("rk-summaries").replaceChildren(...DATA.summaries.map(summaryCard));
    const combo = byId("rk-combo");
    combo.replaceChildren(el("option", { value: "" }, "every suite and model"), ...DATA.summaries.map((s, i) => el("option", { value: i }, comboLabel(s))));
    combo.hidden = DATA.summaries.length < 2;
    if (DATA.baseline) {
      const change = byId("rk-change");
      change.hidden = false;
      change.replaceChildren(...[["", "every change"], ["regressed", "pass → fail"], ["improved", "fail → pass"], ["same", "unchanged"], ["new", "not in baseline"]].map(([v, label]) => el("option", { value: v }, label)));
    }
    const groups = byId("rk-groups");
    for (const field of DATA.groups) {
      const values = Array.from(new Set(DATA.rows.map((r) => r.group[field]).filter((v) => v !== undefined))).sort();
      groups.appendChild(el("select", { "data-group": field, "aria-label": field },
        el("option", { value: "" }, "every " + field), values.map((v) => el("option", { value: v }, v))));
    }
    const rerender = () => { state.page = 0; render(); };
    byId("rk-search").addEventListener("input", rerender);
    for (const select of document.querySelectorAll(".controls select")) select.addEventListener("change", rerender);
    byId("rk-prev").addEventListener("click", () => { state.page -= 1; render(); });
    byId("rk-next").addEventListener("click", () => { state.page += 1; render(); });
    header();
    render();
    document.body.setAttribute("data-ready", "1");
  }

  setup();
})();
