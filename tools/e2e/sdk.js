// A shop's web pages, served by a local static server, load the official npm builds of
// Segment's analytics-next and RudderStack's analytics-js (from node_modules, no CDN)
// pointed at Rapport, in Debian's headless Chromium.
// Environment: RAPPORT (Rapport's base URL), WRITE_KEY, SDK (segment | rudderstack),
// PORT (the static server's port; the test allows http://127.0.0.1:PORT only),
// RUN (a tag), BURST (tracks sent at once, for the rate-limit check), ADMIN_KEY (to
// watch the burst arrive), CHROMIUM.
// Prints one JSON line: {"anonymousId": …, "refused": …}; exits non-zero on failure.
const http = require("http");
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const RAPPORT = env("RAPPORT"), KEY = env("WRITE_KEY"), SDK = env("SDK"), PORT = Number(env("PORT"));
const RUN = env("RUN"), BURST = Number(process.env.BURST || "0");

const files = {
  "/segment.js": "node_modules/@segment/analytics-next/dist/umd/index.js",
  "/rudderstack.js": "node_modules/@rudderstack/analytics-js/dist/npm/modern/bundled/umd/index.js",
};

// The page: loads the SDK, then does what `?do=` says and sets window.done.
const page = `<!doctype html><html><head><title>Shop</title>
<script src="/${SDK}.js"></script></head><body><h1>Shop</h1><script>
const q = new URLSearchParams(location.search);
const RAPPORT = ${JSON.stringify(RAPPORT)}, KEY = ${JSON.stringify(KEY)}, RUN = ${JSON.stringify(RUN)};
window.errors = [];
async function main() {
  let a;
  if (${JSON.stringify(SDK)} === "segment") {
    const host = RAPPORT.replace(/^https?:\\/\\//, "");
    [a] = await AnalyticsNext.AnalyticsBrowser.load(
      { writeKey: KEY, cdnURL: RAPPORT },
      { integrations: { "Segment.io": { apiHost: host + "/v1", protocol: "http" } } });
    window.anonymousId = () => a.user().anonymousId();
  } else {
    a = new rudderanalytics.RudderAnalytics();
    a.load(KEY, RAPPORT, { configUrl: RAPPORT, logLevel: "ERROR", destSDKBaseURL: RAPPORT + "/none", pluginsSDKBaseURL: RAPPORT + "/none" });
    await new Promise((ok) => a.ready(ok));
    window.anonymousId = () => a.getAnonymousId();
  }
  const what = q.get("do");
  if (what === "visit") {
    await new Promise((ok) => a.page("Shop", q.get("name") || "Home", {}, ok));
  } else if (what === "buy") {
    await new Promise((ok) => a.identify(RUN + "-user", { email: RUN + "@example.com", name: "Web Buyer" }, {}, ok));
    await new Promise((ok) => a.track("Order Completed", { revenue: 42, currency: "EUR" }, {}, ok));
  } else if (what === "burst") {
    for (let i = 0; i < Number(q.get("n")); i++) a.track("Burst", { i });
  }
  window.done = true;
}
main().catch((e) => { window.errors.push(String(e)); window.done = true; });
</script></body></html>`;

// How many Burst events the buyer's timeline holds (the admin API).
async function burstArrived() {
  const auth = { headers: { Authorization: `Bearer ${env("ADMIN_KEY")}` } };
  const r = await fetch(`${RAPPORT}/api/profiles/lookup?identifier=email:${RUN}@example.com`, auth);
  if (!r.ok) return 0;
  const id = (await r.json()).id;
  const t = await (await fetch(`${RAPPORT}/api/profiles/${id}/timeline?limit=500&name=Burst`, auth)).json();
  return t.items.filter((e) => e.name === "Burst").length;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/shop.html") {
    res.writeHead(200, { "Content-Type": "text/html" });
    return res.end(page);
  }
  const f = files[url.pathname];
  if (!f) { res.writeHead(404); return res.end(); }
  res.writeHead(200, { "Content-Type": "text/javascript" });
  fs.createReadStream(path.join(__dirname, f)).pipe(res);
});

(async () => {
  await new Promise((ok) => server.listen(PORT, "127.0.0.1", ok));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"],
  });
  const step = (name) => console.error("step:", name);
  const out = {};
  try {
    // A real browser's user agent: headless Chromium's own is, rightly, a bot's.
    const context = await browser.newContext({
      userAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    });
    const refusals = [];
    const visit = async (origin, query) => {
      const p = await context.newPage();
      p.on("response", (r) => { if (r.url().startsWith(RAPPORT) && r.status() >= 400) refusals.push(`${r.status()} ${r.url()}`); });
      await p.goto(`${origin}/shop.html?${query}`);
      await p.waitForFunction(() => window.done === true, null, { timeout: 20000 });
      const errors = await p.evaluate(() => window.errors);
      if (errors.length) throw new Error(`${query}: ${errors.join("; ")}`);
      return p;
    };
    const shop = `http://127.0.0.1:${PORT}`;
    step("two visits, then an identify and a track");
    let p = await visit(shop, "do=visit&name=Home");
    out.anonymousId = await p.evaluate(() => window.anonymousId());
    // Leave time for the SDK to deliver before the page goes.
    await p.waitForTimeout(1500);
    await p.close();
    p = await visit(shop, `do=visit&name=Spring%20sale&utm_source=newsletter&utm_medium=email&utm_campaign=spring`);
    await p.waitForTimeout(1500);
    if ((await p.evaluate(() => window.anonymousId())) !== out.anonymousId) throw new Error("the anonymous id changed between visits");
    await p.close();
    p = await visit(shop, "do=buy");
    await p.waitForTimeout(2000);
    if (BURST > 0) {
      step(`a burst of ${BURST} tracks, past the rate limit`);
      await p.evaluate(() => {}); // same page: the SDK's queue retries after Retry-After
      await p.goto(`${shop}/shop.html?do=burst&n=${BURST}`);
      await p.waitForFunction(() => window.done === true, null, { timeout: 20000 });
      // Keep the page open (the SDK's queue lives in it) until every event arrived.
      const started = Date.now();
      out.burstArrived = 0;
      while (Date.now() - started < 90000) {
        out.burstArrived = await burstArrived();
        if (out.burstArrived >= BURST) break;
        await p.waitForTimeout(1000);
      }
      out.burstSeconds = (Date.now() - started) / 1000;
    }
    out.refusedBeforeOrigin = refusals.length;
    step("a page on another origin is refused");
    const other = await context.newPage();
    const seen = [];
    other.on("response", (r) => { if (r.url().startsWith(RAPPORT)) seen.push(r.status()); });
    await other.goto(`http://localhost:${PORT}/shop.html?do=visit&name=Elsewhere`);
    await other.waitForTimeout(2500);
    out.otherOrigin = seen;
    out.refusals = refusals;
    console.log(JSON.stringify(out));
  } catch (e) {
    console.error(e.stack || String(e));
    process.exitCode = 1;
  } finally {
    await browser.close();
    server.close();
  }
})();
