// A customer uses the portal in Debian's headless Chromium: asks for a sign-in link,
// takes it from the SMTP server's mailbox (the aiosmtpd sink's folder, read by
// LINK_SCRIPT), edits a detail, turns marketing e-mail off, reads "why am I seeing
// this", downloads their data and deletes the account.
// Environment: BASE, EMAIL, MAILDIR, LINK_SCRIPT, SEGMENT, SHOTS, CHROMIUM.
const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");
const fs = require("fs");
const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const BASE = env("BASE"), EMAIL = env("EMAIL"), SHOTS = env("SHOTS");

async function expectText(page, text) {
  await page.waitForFunction((t) => document.body.innerText.includes(t), text, { timeout: 10000 })
    .catch(() => { throw new Error(`"${text}" not on ${page.url()}`); });
}

async function linkFromMailbox() {
  for (let i = 0; i < 200; i++) {
    const out = execFileSync("python3", [env("LINK_SCRIPT"), env("MAILDIR"), EMAIL]).toString().trim();
    if (out) return out;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("no sign-in link reached the mailbox");
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const step = (name) => console.log("step:", name);
  try {
    // No JavaScript: the portal works without it.
    const context = await browser.newContext({ javaScriptEnabled: false, acceptDownloads: true, viewport: { width: 900, height: 1000 } });
    const page = await context.newPage();

    step("ask for a sign-in link");
    await page.goto(BASE + "/me");
    await page.fill("#email", EMAIL);
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    await expectText(page, "Check your inbox");

    step("open the link from the mailbox and sign in");
    await page.goto(await linkFromMailbox());
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    await expectText(page, "My profile");
    await expectText(page, EMAIL);
    await page.screenshot({ path: `${SHOTS}/portal.png`, fullPage: true });

    step("edit a detail");
    await page.fill("#t-name", "Ann Portal-Tested");
    await Promise.all([page.waitForNavigation(), page.click("form[action='/me/traits'] button")]);
    await expectText(page, "Your details are saved.");
    if ((await page.inputValue("#t-name")) !== "Ann Portal-Tested") throw new Error("the detail was not saved");

    step("turn marketing e-mail off");
    if (!(await page.isChecked("#pref-email-marketing"))) throw new Error("marketing was not granted before");
    await page.uncheck("#pref-email-marketing");
    await Promise.all([page.waitForNavigation(), page.click("form[action='/me/preferences'] button")]);
    await expectText(page, "Your choices are saved");
    if (await page.isChecked("#pref-email-marketing")) throw new Error("marketing is still on");

    step("why am I seeing this");
    await expectText(page, "Why am I seeing this?");
    await expectText(page, env("SEGMENT"));
    await expectText(page, "Your sign-in link");

    step("download my data");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Download my data")]);
    const file = await download.path();
    const doc = JSON.parse(fs.readFileSync(file, "utf8"));
    if (doc.format !== "rapport.person-export/1" || !JSON.stringify(doc).includes(EMAIL)) throw new Error("the download is not my data");

    step("delete my account");
    await Promise.all([page.waitForNavigation(), page.click("text=Delete my account")]);
    await page.check("#confirm");
    await page.screenshot({ path: `${SHOTS}/portal-delete.png`, fullPage: true });
    await Promise.all([page.waitForNavigation(), page.click("button.danger")]);
    await expectText(page, "Everything we stored about you is deleted.");
    await page.goto(BASE + "/me");
    await expectText(page, "Send me a sign-in link");
    console.log("ok");
  } catch (e) {
    console.error(e.stack || String(e));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
