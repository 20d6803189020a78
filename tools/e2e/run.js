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
    await page.screenshot({ path: `${SHOTS}/dashboard.png`, fullPage: true });

    step("the / key leads to the people search");
    await Promise.all([page.waitForURL(/\/people$/), page.keyboard.press("/")]);

    step("search a customer by wallet address, results as you type");
    await page.goto(BASE + "/people");
    await page.type("#q", env("WALLET"), { delay: 5 });
    // The page opens with a list of people: wait for the answer to this query.
    await page.waitForSelector(`#results[data-q="${env("WALLET")}"] a.result`, { timeout: 10000 });
    await page.screenshot({ path: `${SHOTS}/search.png`, fullPage: true });
    await Promise.all([page.waitForNavigation(), page.click("#results a.result")]);
    await expectText(page, "Identities");
    await expectText(page, env("WALLET").slice(0, 10));
    await page.screenshot({ path: `${SHOTS}/person.png`, fullPage: true });

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
    await page.screenshot({ path: `${SHOTS}/segment-editor.png`, fullPage: true });
    await page.fill("#definition", "");
    await page.type("#definition", "count(track", { delay: 5 });
    await page.waitForSelector("#live.error", { timeout: 10000 });
    await expectText(page, "line 1, column");
    await page.fill("#definition", 'traits.favorite_color = "teal"');
    await Promise.all([page.waitForNavigation(), page.click("#editor button[type=submit]")]);
    await expectText(page, "Size over time");
    await page.screenshot({ path: `${SHOTS}/segment.png`, fullPage: true });

    for (const p of ["rules", "network", "insights", "onchain", "email", "settings"]) {
      step("open " + p);
      await page.goto(`${BASE}/${p}`);
      await page.screenshot({ path: `${SHOTS}/${p}.png`, fullPage: true });
    }

    step("sign out");
    await Promise.all([page.waitForNavigation(), page.click("header form button")]);
    await page.waitForURL(/\/login/);
    await page.goto(BASE + "/people");
    await page.waitForURL(/\/login/);

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
    await page.screenshot({ path: `${SHOTS}/viewer.png`, fullPage: true });
    if (errors.length) throw new Error("script errors on the pages: " + errors.join("; "));
    console.log("ok");
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error("FAILED:", e.message); process.exit(1); });
