/* The report page's script (inlined by pipeline/page.py): renders the pair cards from the JSON in the
 * #data script element, one page of 50 at a time, with search, filters, sorting and deep links (#<id>).
 *
 * Model text is untrusted: it only ever reaches the DOM as text nodes (textContent, createTextNode), never
 * through innerHTML or attributes that the browser interprets. Nothing here fetches anything.
 */
"use strict";
(function () {
  // The data: JSON in the #data element, or (large iterations) gzip+base64 in the #data-gz element, inflated
  // with the browser's DecompressionStream (no network: the bytes are in this file).
  function base64Bytes(text) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function loadData() {
    const plain = document.getElementById("data");
    if (plain) return JSON.parse(plain.textContent);
    const packed = document.getElementById("data-gz");
    if (typeof DecompressionStream !== "function") {
      throw new Error("this browser has no DecompressionStream: open the page in a current Chrome, Firefox or Safari");
    }
    const stream = new Blob([base64Bytes(packed.textContent.trim())]).stream()
      .pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  function fail(err) {
    const count = document.getElementById("count");
    if (count) count.textContent = "cannot show the pairs: " + (err && err.message ? err.message : String(err));
    throw err;
  }

  loadData().then(main, fail);

  function main(D) {
    const pairs = D.pairs;
    const total = pairs.length;
    const size = D.page_size || 50;

    const $ = (id) => document.getElementById(id);
    const ui = {
      search: $("search"), kind: $("kind"), minMargin: $("min-margin"), length: $("length"), sort: $("sort"),
      reset: $("reset"), prev: $("prev"), next: $("next"), pageLabel: $("page-label"), count: $("count"),
      cards: $("cards"),
    };

    // ------------------------------------------------------------------------------------------- helpers
    // el("div", {className: "x", "data-id": id}, [child, "text", ...]): strings become text nodes.
    function el(tag, props, children) {
      const node = document.createElement(tag);
      if (props) {
        for (const [k, v] of Object.entries(props)) {
          if (v === undefined || v === null) continue;
          if (k === "className") node.className = v;
          else if (k === "text") node.textContent = v;
          else if (k === "href") node.setAttribute("href", v);
          else if (k === "open") node.open = Boolean(v);
          else node.setAttribute(k, String(v));
        }
      }
      if (children) {
        for (const c of children) {
          if (c === null || c === undefined || c === false) continue;
          node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
        }
      }
      return node;
    }

    function fmt(x) {
      if (x === null || x === undefined) return "–";
      if (typeof x === "boolean") return x ? "yes" : "no";
      if (typeof x !== "number") return String(x);
      if (Number.isInteger(x)) return String(x);
      const a = Math.abs(x);
      if (a >= 1000) return x.toFixed(0);
      if (a >= 10) return x.toFixed(1);
      return String(Number(x.toFixed(3)));
    }

    // A response's thought and final text are [begin, end] offsets into its output when they are part of it.
    function part(r, field) {
      const v = r[field];
      if (Array.isArray(v)) return r.output.slice(v[0], v[1]);
      return v || "";
    }

    function textBlock(text, emptyNote) {
      if (!text) return el("p", { className: "empty", text: emptyNote || "(empty)" });
      return el("pre", { className: "text", text: text });
    }

    function details(summary, body, props) {
      const d = el("details", Object.assign({ className: "sub" }, props || {}), [el("summary", { text: summary })]);
      for (const b of body) if (b) d.appendChild(b);
      return d;
    }

    function mark(ok) {
      return el("span", { className: ok ? "ok" : "bad", text: ok ? "✓ correct" : "✗ wrong" });
    }

    // --------------------------------------------------------------------------------------- search text
    function responseTexts(id, out, withJudgments) {
      const r = D.responses[id];
      out.push(id);
      if (!r) return;
      out.push(part(r, "thought"), part(r, "response"));
      if (withJudgments && r.judgments) {
        for (const jid of r.judgments) {
          const j = D.judgments[jid];
          out.push(jid, j ? j.text : "");
        }
      }
    }

    function sideTexts(p, role, out) {
      const id = p[role + "_id"];
      if ((role + "_text") in p) { out.push(id, p[role + "_text"]); return; }
      if (p.kind === "response" || p.kind === "verified") responseTexts(id, out, true);
      else if (p.kind === "judgment") { out.push(id, D.judgments[id].text); }
      else if (p.kind === "reflection") { const f = D.reflections[id]; out.push(id, f.text, f.retry); }
      else out.push(id);
    }

    // Everything a card shows as text, lower-cased once, on the first search.
    const hay = new Array(total);
    function haystack(i) {
      if (hay[i] === undefined) {
        const p = pairs[i];
        const out = [p.id, p.prompt_id, p.prompt_text || ""];
        const pr = D.prompts[p.prompt_id];
        if (pr) out.push(pr.instruction, pr.input || "");
        sideTexts(p, "chosen", out);
        sideTexts(p, "rejected", out);
        if (p.context_id) responseTexts(p.context_id, out, false);
        hay[i] = out.join("\n").toLowerCase();
      }
      return hay[i];
    }

    // ------------------------------------------------------------------------------------- deep-link ids
    // Any id a card shows -> the index of the first pair showing it (a pair's own id -> that pair).
    const owner = new Map();
    pairs.forEach((p, i) => owner.set(p.id, i));
    pairs.forEach((p, i) => {
      const ids = [p.chosen_id, p.rejected_id, p.context_id, p.prompt_id];
      for (const role of ["chosen", "rejected"]) {
        const r = (p.kind === "response" || p.kind === "verified") ? D.responses[p[role + "_id"]] : null;
        if (r && r.judgments) ids.push(...r.judgments);
      }
      for (const id of ids) if (id && !owner.has(id)) owner.set(id, i);
    });

    // -------------------------------------------------------------------------------------------- state
    let filtered = pairs.map((_, i) => i);
    let page = 1;

    function pages() { return Math.max(1, Math.ceil(filtered.length / size)); }

    function apply() {
      const terms = ui.search.value.toLowerCase().split(/\s+/).filter(Boolean);
      const kind = ui.kind.value;
      const raw = ui.minMargin.value.trim();
      const minMargin = raw === "" ? NaN : Number(raw);
      const length = ui.length.value;
      const out = [];
      for (let i = 0; i < total; i++) {
        const p = pairs[i];
        if (kind && p.kind !== kind) continue;
        if (!Number.isNaN(minMargin) && !(p.margin >= minMargin)) continue;
        if (length === "longer" && !(p.chosen_chars > p.rejected_chars)) continue;
        if (length === "shorter" && !(p.chosen_chars < p.rejected_chars)) continue;
        if (terms.length) {
          const h = haystack(i);
          if (!terms.every((t) => h.includes(t))) continue;
        }
        out.push(i);
      }
      const sort = ui.sort.value;
      if (sort === "margin-desc") out.sort((a, b) => (pairs[b].margin - pairs[a].margin) || (a - b));
      else if (sort === "margin-asc") out.sort((a, b) => (pairs[a].margin - pairs[b].margin) || (a - b));
      else if (sort === "id") out.sort((a, b) => (pairs[a].id < pairs[b].id ? -1 : pairs[a].id > pairs[b].id ? 1 : 0));
      filtered = out;
      page = 1;
      render();
    }

    function render() {
      page = Math.min(Math.max(1, page), pages());
      const frag = document.createDocumentFragment();
      const start = (page - 1) * size;
      for (const i of filtered.slice(start, start + size)) frag.appendChild(card(i));
      if (!filtered.length) frag.appendChild(el("p", { className: "empty", text: "No pair matches these filters." }));
      ui.cards.replaceChildren(frag);
      const label = "page " + page + " of " + pages();
      ui.pageLabel.textContent = label;
      for (const x of document.querySelectorAll(".pager .page-label")) x.textContent = label;
      ui.count.textContent = filtered.length + " of " + total + " pairs shown";
      for (const b of [ui.prev, ...document.querySelectorAll(".pager .prev")]) b.disabled = page <= 1;
      for (const b of [ui.next, ...document.querySelectorAll(".pager .next")]) b.disabled = page >= pages();
    }

    function turn(step) {
      page += step;
      render();
      $("pairs").scrollIntoView({ block: "start" });
    }

    // --------------------------------------------------------------------------------------------- cards
    function judgmentLine(id, j) {
      const bits = [id, "score " + fmt(j.score), j.method];
      if (j.elo !== null && j.elo !== undefined) bits.push("Elo " + fmt(j.elo) + " (" + fmt(j.wins) + " W / " + fmt(j.losses) + " L)");
      if (j.extra) bits.push("extra (meta-judge)");
      return bits.join(" · ");
    }

    function responseBody(id, r, withJudgments) {
      const nodes = [];
      const meta = ["sample " + r.sample_index, r.tokens + " tokens", "finish " + r.finish_reason,
        "parsed " + fmt(r.parse_ok), "mean judge score " + fmt(r.score)];
      nodes.push(el("div", { className: "meta", text: meta.join(" · ") }));
      const v = r.verification;
      if (v) {
        nodes.push(el("div", { className: "meta" }, [
          "verifier " + v.verifier + ": ", mark(v.correct),
          " · level " + v.level + " · " + v.method + " · answer ", el("code", { text: v.extracted === null ? "none" : v.extracted }),
          v.detail ? " · " + v.detail : "",
        ]));
      }
      const response = part(r, "response");
      nodes.push(textBlock(response, "(empty response)"));
      const thought = part(r, "thought");
      if (thought) nodes.push(details("thought (" + thought.length + " chars)", [textBlock(thought)]));
      if (r.output && r.output !== response) {
        nodes.push(details("raw output, the DPO completion (" + r.output.length + " chars)", [textBlock(r.output)]));
      }
      if (withJudgments && r.judgments && r.judgments.length) {
        const list = el("ul", { className: "judgment-list" });
        for (const jid of r.judgments) {
          const j = D.judgments[jid];
          if (!j) continue;
          list.appendChild(el("li", null, [details(judgmentLine(jid, j), [textBlock(j.text)], { "data-id": jid })]));
        }
        nodes.push(el("div", { className: "meta", text: r.judgments.length + " judgments" }), list);
      }
      return nodes;
    }

    function side(p, role) {
      const id = p[role + "_id"];
      const score = p[role + "_score"];
      const sec = el("section", { className: "side " + role, "data-id": id }, [
        el("h3", null, [el("span", { className: "role", text: role }), " ", el("code", { text: id }),
          " · " + (p.kind === "judgment" ? "Elo " : "score ") + fmt(score) + " · " + p[role + "_chars"] + " chars"]),
      ]);
      if ((role + "_text") in p) {
        sec.appendChild(el("div", { className: "meta", text: "row not found in this iteration's tables: the pair's own text" }));
        sec.appendChild(textBlock(p[role + "_text"]));
        return sec;
      }
      if (p.kind === "response" || p.kind === "verified") {
        for (const n of responseBody(id, D.responses[id], true)) sec.appendChild(n);
      } else if (p.kind === "judgment") {
        const j = D.judgments[id];
        sec.appendChild(el("div", { className: "meta", text: judgmentLine("judge #" + j.index, j) }));
        sec.appendChild(textBlock(j.text));
      } else if (p.kind === "reflection") {
        const f = D.reflections[id];
        sec.appendChild(el("div", { className: "meta" }, [
          "reflection #" + f.index + " · retry ", mark(f.retry_correct), " · answer ",
          el("code", { text: f.retry_answer === null ? "none" : f.retry_answer }), " (" + f.retry_method + ")",
        ]));
        sec.appendChild(textBlock(f.text));
        sec.appendChild(details("retry (" + f.retry.length + " chars)", [textBlock(f.retry)]));
      }
      return sec;
    }

    function candidatesTable(p, cands) {
      const cols = Object.keys(cands[0]);
      const t = el("table", { className: "small" }, [el("thead", null, [el("tr", null, cols.map((c) => el("th", { text: c })))])]);
      const body = el("tbody");
      for (const c of cands) {
        const cls = c.id === p.chosen_id ? "is-chosen" : c.id === p.rejected_id ? "is-rejected" : null;
        body.appendChild(el("tr", { className: cls }, cols.map((k) => el("td", { className: typeof c[k] === "number" ? "num" : null, text: fmt(c[k]) }))));
      }
      t.appendChild(body);
      return t;
    }

    function why(p) {
      const w = p.why || {};
      const body = [el("p", { text: w.rule || "" })];
      if (w.rho !== undefined) body.push(el("div", { className: "meta", text: "length rho " + fmt(w.rho) }));
      if (w.band) body.push(el("div", { className: "meta", text: "band: chosen score ≥ " + fmt(w.band.chosen_at_least) + ", rejected ≤ " + fmt(w.band.rejected_at_most) }));
      if (w.candidates && w.candidates.length) body.push(candidatesTable(p, w.candidates));
      if (w.reselected !== undefined && w.reselected !== null) {
        body.push(el("div", { className: "meta", text: "re-applying the rule picks: " + JSON.stringify(w.reselected) }));
      }
      body.push(el("div", { className: "meta", text: "provenance: " + JSON.stringify(p.provenance) }));
      const agree = w.agrees ? "✓ the rule re-applied to the rows picks this pair" : "✗ the rule re-applied does not pick this pair";
      return details("why: " + agree, body, { className: "sub why" });
    }

    function reference(p) {
      const ref = p.reference;
      if (!ref) return el("div", { className: "meta", text: "reference log-probs: none stored (dpo computes them)" });
      const rows = ["chosen", "rejected"].map((role) => {
        const s = ref[role] || {};
        return el("tr", { className: "is-" + role }, [el("td", { text: role }), el("td", { className: "num", text: fmt(s.logprob) }),
          el("td", { className: "num", text: fmt(s.stop_logprob) }), el("td", { className: "num", text: fmt(s.tokens) })]);
      });
      const t = el("table", { className: "small" }, [
        el("thead", null, [el("tr", null, ["", "log-prob", "stop log-prob", "tokens"].map((c) => el("th", { text: c })))]),
        el("tbody", null, rows)]);
      return details("reference log-probs (model " + (ref.model_sha256 || "?") + ")", [t]);
    }

    function card(i) {
      const p = pairs[i];
      const art = el("article", { className: "pair", id: p.id, "data-kind": p.kind });
      art.appendChild(el("div", { className: "pair-head" }, [
        el("a", { className: "permalink", href: "#" + encodeURIComponent(p.id), title: "link to this pair", text: "#" + p.id }),
        el("span", { className: "badge kind-" + p.kind, text: p.kind }),
        el("span", { text: "margin " + fmt(p.margin) + " (" + fmt(p.chosen_score) + " − " + fmt(p.rejected_score) + ")" }),
        el("span", { className: "ids mono", text: "prompt " + p.prompt_id + " · chosen " + p.chosen_id + " · rejected " + p.rejected_id }),
      ]));
      const pr = D.prompts[p.prompt_id];
      const promptBox = el("div", { className: "prompt-text" });
      if (pr && !p.prompt_text) {
        const meta = ["source " + pr.source];
        if (pr.category) meta.push("category " + pr.category);
        if (pr.verifier) meta.push("verifier " + pr.verifier);
        if (pr.answer !== null && pr.answer !== undefined) meta.push("answer " + pr.answer);
        promptBox.appendChild(el("div", { className: "meta", text: "prompt · " + meta.join(" · ") }));
        promptBox.appendChild(textBlock(pr.instruction + (pr.input ? "\n\nInput:\n" + pr.input : "")));
      } else {
        promptBox.appendChild(el("div", { className: "meta", text: p.kind === "judge_training"
          ? "the judge's prompt: a known pair's instruction and both responses" + (pr ? " · task " + pr.source : "")
          : "prompt (row not found: the pair's own prompt)" }));
        promptBox.appendChild(textBlock(p.prompt_text));
      }
      art.appendChild(promptBox);
      art.appendChild(el("div", { className: "sides" }, [side(p, "chosen"), side(p, "rejected")]));
      if (p.context_id) {
        const r = D.responses[p.context_id];
        const what = p.kind === "judgment" ? "the judged response " : "the failed attempt ";
        art.appendChild(details(what + p.context_id, responseBody(p.context_id, r, false), { className: "sub context", "data-id": p.context_id }));
      }
      art.appendChild(why(p));
      art.appendChild(reference(p));
      return art;
    }

    // ---------------------------------------------------------------------------------------- deep links
    let notice = null;
    function say(text) {
      if (!notice) { notice = el("p", { className: "note", id: "notice" }); ui.cards.before(notice); }
      notice.textContent = text;
    }

    function resetControls() {
      ui.search.value = ""; ui.kind.value = ""; ui.minMargin.value = ""; ui.length.value = ""; ui.sort.value = "file";
    }

    function goToHash() {
      let id = location.hash.slice(1);
      try { id = decodeURIComponent(id); } catch (e) { /* keep it raw */ }
      if (!id) return;
      const i = owner.get(id);
      if (i === undefined) {
        if (!document.getElementById(id)) say("No pair shows the id “" + id + "” in this iteration.");
        return;
      }
      if (notice) notice.textContent = "";
      let pos = filtered.indexOf(i);
      if (pos < 0) { resetControls(); apply(); pos = filtered.indexOf(i); }
      const want = Math.floor(pos / size) + 1;
      if (want !== page) { page = want; render(); }
      for (const x of document.querySelectorAll(".highlight")) x.classList.remove("highlight");
      const art = document.getElementById(pairs[i].id);
      if (!art) return;
      art.classList.add("highlight");
      if (id !== pairs[i].id) {
        for (const x of art.querySelectorAll("[data-id]")) {
          if (x.getAttribute("data-id") === id) {
            x.classList.add("highlight");
            if (x.tagName === "DETAILS") x.open = true;
          }
        }
      }
      art.scrollIntoView({ block: "start" });
    }

    // ------------------------------------------------------------------------------------------- wiring
    const perKind = {};
    for (const p of pairs) perKind[p.kind] = (perKind[p.kind] || 0) + 1;
    for (const k of D.kinds) ui.kind.appendChild(el("option", { value: k, text: k + " (" + (perKind[k] || 0) + ")" }));

    let timer = null;
    ui.search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(apply, total > 2000 ? 250 : 80); });
    ui.search.addEventListener("keydown", (e) => { if (e.key === "Enter") { clearTimeout(timer); apply(); } });
    for (const c of [ui.kind, ui.length, ui.sort]) c.addEventListener("change", apply);
    ui.minMargin.addEventListener("input", apply);
    ui.reset.addEventListener("click", () => { resetControls(); apply(); });
    for (const b of [ui.prev, ...document.querySelectorAll(".pager .prev")]) b.addEventListener("click", () => turn(-1));
    for (const b of [ui.next, ...document.querySelectorAll(".pager .next")]) b.addEventListener("click", () => turn(1));
    window.addEventListener("hashchange", goToHash);

    apply();
    if (location.hash.length > 1) goToHash();
  }
})();
