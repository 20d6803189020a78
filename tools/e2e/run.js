// Drives Debian's headless Chromium through Rapport's staff web app as a person would.
// Environment: BASE, ADMIN_EMAIL, ADMIN_PASSWORD, VIEWER_EMAIL, VIEWER_PASSWORD,
// WALLET (an address to search), MERGED_ID (a person with a merge), SHOTS (a folder).
// Exits non-zero with the failing step on stderr.
const { chromium } = require("playwright-core");
const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const BASE = env("BASE"), SHOTS = env("SHOTS");

async function signIn(page, email, password) {
  await page.goto(BASE + "/");
  await page.waitForURL(/\/login/);
  await page.fill("#email", email);
  await page.fill("#password", password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
}

// Every page shown is audited with axe-core (no serious or critical violation) and
// weighed (HTML and what it loads, as transferred: at most 300 KB); the figures go to
// stdout as "page: …" lines for docs/ui.md.
const AXE = require.resolve("axe-core/axe.min.js");
const problems = [];
async function check(page, name) {
  const w = await page.evaluate(() => {
    const n = performance.getEntriesByType("navigation")[0];
    const rs = performance.getEntriesByType("resource");
    return { bytes: n.transferSize + rs.reduce((a, e) => a + e.transferSize, 0), server: n.responseStart - n.requestStart };
  });
  await page.addScriptTag({ path: AXE });
  const bad = await page.evaluate(async () => {
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}, ${v.nodes.length}×): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
  });
  console.log(`page: ${name} ${(w.bytes / 1024).toFixed(1)} KB, first byte ${w.server.toFixed(0)} ms, ${bad.length} serious/critical`);
  for (const b of bad) problems.push(`${name}: ${b}`);
  if (w.bytes > 300 * 1024) problems.push(`${name}: ${(w.bytes / 1024).toFixed(0)} KB transferred (budget 300 KB)`);
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
  await check(page, name);
}

async function expectText(page, text) {
  await page.waitForFunction((t) => document.body.innerText.includes(t), text, { timeout: 10000 })
    .catch(() => { throw new Error(`"${text}" not on ${page.url()}`); });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const step = (name) => console.log("step:", name);
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));

    step("sign in as admin");
    await signIn(page, env("ADMIN_EMAIL"), env("ADMIN_PASSWORD"));
    await expectText(page, "Events per day");
    await shot(page, "dashboard");

    step("the / key leads to the people search");
    await Promise.all([page.waitForURL(/\/people$/), page.keyboard.press("/")]);

    step("search a customer by wallet address, results as you type");
    await page.goto(BASE + "/people");
    await page.type("#q", env("WALLET"), { delay: 5 });
    // The page opens with a list of people: wait for the answer to this query.
    await page.waitForSelector(`#results[data-q="${env("WALLET")}"] a.result`, { timeout: 10000 });
    await shot(page, "search");
    await Promise.all([page.waitForNavigation(), page.click("#results a.result")]);
    await expectText(page, "Identities");
    await expectText(page, env("WALLET").slice(0, 10));
    await shot(page, "person");

    step("edit a trait");
    await page.fill("#trait", "favorite_color");
    await page.fill("#value", "teal");
    await Promise.all([page.waitForNavigation(), page.click("form[action$='/traits'] button")]);
    await expectText(page, "Saved favorite_color.");
    await expectText(page, "teal");

    step("unmerge");
    await page.goto(`${BASE}/people/${env("MERGED_ID")}`);
    await Promise.all([page.waitForNavigation(), page.click("form[action$='/unmerge'] button")]);
    await expectText(page, "Unmerged #");

    step("build a segment and see its count");
    await page.goto(BASE + "/segments");
    await page.fill("#name", "Teal lovers");
    await page.type("#definition", 'traits.favorite_color = "teal"', { delay: 5 });
    await page.waitForFunction(() => /1 people match/.test(document.getElementById("live").textContent), null, { timeout: 10000 })
      .catch(() => { throw new Error("no live count: " + page.url()); });
    await shot(page, "segment-editor");
    await page.fill("#definition", "");
    await page.type("#definition", "count(track", { delay: 5 });
    await page.waitForSelector("#live.error", { timeout: 10000 });
    await expectText(page, "line 1, column");
    await page.fill("#definition", 'traits.favorite_color = "teal"');
    await Promise.all([page.waitForNavigation(), page.click("#editor button[type=submit]")]);
    await expectText(page, "Size over time");
    await shot(page, "segment");

    step("build a rule in the app, dry-run it, save it");
    await page.goto(BASE + "/rules/new");
    await page.fill("#name", "Call back ticket openers (browser)");
    await page.fill("#when", 'track "Ticket Opened"');
    await page.selectOption("#action0", "task");
    await page.fill("#first0", "Call back from the browser test");
    await page.selectOption("#action1", "add_tag");
    // The script relabels the row for the kind chosen.
    await page.waitForFunction(() => document.querySelector("label[for=first1]").textContent === "Tag");
    await page.fill("#first1", "called-back");
    await Promise.all([page.waitForNavigation(), page.click("button[value=dry-run]")]);
    await expectText(page, "Would fire");
    await shot(page, "rule-dry-run");
    await Promise.all([page.waitForNavigation(), page.click("button[value=save]")]);
    await page.waitForURL(/\/rules$/);
    await expectText(page, "Call back ticket openers (browser)");

    step("an event through the Segment API opens the rule's task");
    const sent = await page.evaluate(async ([key, id]) => {
      const r = await fetch("/v1/track", { method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Basic " + btoa(key + ":") },
        body: JSON.stringify({ userId: id, event: "Ticket Opened", properties: { subject: "Where is my parcel?" } }) });
      return r.status;
    }, [env("WRITE_KEY"), "u7"]);
    if (sent !== 200) throw new Error("the Segment API answered " + sent);
    let seen = false;
    for (let i = 0; i < 50 && !seen; i++) {
      await page.goto(BASE + "/rules");
      seen = (await page.innerText("body")).includes("Call back from the browser test");
      if (!seen) await page.waitForTimeout(200);
    }
    if (!seen) throw new Error("no task on /rules after the event");

    for (const p of ["rules", "rules/new", "offers/new", "scores", "network", "insights", "audience", "onchain", "email", "settings", "audit", "people", "people/conflicts", "support?view=all", "loyalty"]) {
      step("open " + p);
      await page.goto(`${BASE}/${p}`);
      await shot(page, p.replace("/", "-").replace("?view=all", ""));
    }
    step("open a ticket of the demo");
    await page.goto(`${BASE}/support?view=all`);
    await Promise.all([page.waitForNavigation(), page.click("td a[href^='/support/']")]);
    await expectText(page, "Conversation");
    await shot(page, "support-ticket");
    step("open the demo's e-mail campaign and template");
    await page.goto(`${BASE}/email`);
    await Promise.all([page.waitForNavigation(), page.click("a[href^='/email/campaigns/']")]);
    await expectText(page, "December win-back");
    await shot(page, "email-campaign");
    await page.goto(`${BASE}/email`);
    await Promise.all([page.waitForNavigation(), page.click("a[href^='/email/templates/']")]);
    await shot(page, "email-template");

    step("sign out");
    await Promise.all([page.waitForNavigation(), page.click("header form button")]);
    await page.waitForURL(/\/login/);
    await page.goto(BASE + "/people");
    await page.waitForURL(/\/login/);
    await shot(page, "login");

    step("a viewer cannot edit");
    await signIn(page, env("VIEWER_EMAIL"), env("VIEWER_PASSWORD"));
    await page.goto(`${BASE}/people/${env("MERGED_ID")}`);
    await expectText(page, "can view but not edit");
    if (await page.$("#trait")) throw new Error("a viewer sees the trait form");
    if (await page.$("form[action$='/unmerge'] button")) throw new Error("a viewer sees an unmerge button");
    const status = await page.evaluate(async (id) => {
      const csrf = document.querySelector("meta[name=csrf]").content;
      const r = await fetch(`/people/${id}/traits`, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: csrf, trait: "vip", value: "true" }) });
      return r.status;
    }, env("MERGED_ID"));
    if (status !== 403) throw new Error("a viewer's trait edit answered " + status);
    await shot(page, "viewer");
    if (problems.length) throw new Error("accessibility or weight:\n  " + problems.join("\n  "));
    if (errors.length) throw new Error("script errors on the pages: " + errors.join("; "));
    console.log("ok");
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error("FAILED:", e.message); process.exit(1); });
