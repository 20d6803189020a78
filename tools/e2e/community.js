// Customers help each other in Debian's headless Chromium: Ann asks in the community,
// Bob answers, Ann accepts and thanks him in a comment, Bob edits his answer; Bob proposes a help article, an agent publishes it in the
// staff app, and the help centre's search finds it; typing a ticket subject in the
// portal suggests the article, and opening it counts.
// Environment: BASE, ANN, BOB, AGENT, PASSWORD, MAILDIR, LINK_SCRIPT, SHOTS, CHROMIUM.
const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");
const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const BASE = env("BASE"), SHOTS = env("SHOTS");

async function expectText(page, text) {
  await page.waitForFunction((t) => document.body.innerText.includes(t), text, { timeout: 10000 })
    .catch(() => { throw new Error(`"${text}" not on ${page.url()}`); });
}

// Links already opened: a second sign-in waits for its own e-mail (under load the
// newest message in the mailbox can still be the first sign-in's, already used).
const used = new Set();

async function linkFor(email) {
  for (let i = 0; i < 200; i++) {
    const out = execFileSync("python3", [env("LINK_SCRIPT"), env("MAILDIR"), email]).toString().trim();
    if (out && !used.has(out)) {
      used.add(out);
      return out;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no sign-in link reached ${email}`);
}

async function customer(browser, email, js) {
  const context = await browser.newContext({ javaScriptEnabled: js, viewport: { width: 900, height: 1000 } });
  const page = await context.newPage();
  await page.goto(BASE + "/me");
  await page.fill("#email", email);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  await expectText(page, "Check your inbox");
  await page.goto(await linkFor(email));
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  await expectText(page, "My profile");
  return page;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const step = (name) => console.log("step:", name);
  try {
    step("Ann asks");
    const ann = await customer(browser, env("ANN"), false);
    await Promise.all([ann.waitForNavigation(), ann.click("a[href='/community']")]);
    await ann.fill("#ask-title", "Can I change the delivery address after ordering?");
    await ann.fill("#ask-body", "I moved last week and my order has not shipped yet.");
    await Promise.all([ann.waitForNavigation(), ann.click("form[action='/community/ask'] button")]);
    const question = ann.url();
    if (!/\/community\/questions\/\d+$/.test(question)) throw new Error(`not on the question: ${question}`);
    await expectText(ann, "0 answers");

    step("Bob answers");
    const bob = await customer(browser, env("BOB"), false);
    await bob.goto(question);
    await bob.fill("#answer-body", "Yes: open the order in your account and choose Change address before it ships.");
    await Promise.all([bob.waitForNavigation(), bob.click("form[action$='/answers'] button")]);
    await expectText(bob, "1 answers");

    step("Ann accepts");
    await ann.goto(question);
    await expectText(ann, "Change address before it ships");
    await Promise.all([ann.waitForNavigation(), ann.click("text=Accept this answer")]);
    await expectText(ann, "✓ Accepted answer");
    const ld = JSON.parse(await ann.textContent("script[type='application/ld+json']"));
    if (ld["@type"] !== "QAPage" || !ld.mainEntity.acceptedAnswer) throw new Error("no QAPage with an accepted answer");

    step("Ann comments on the answer; Bob edits his");
    await ann.click("div[id^='a'] summary:has-text('Comment')");
    await ann.fill("div[id^='a'] textarea[name='body']", "Thank you, that worked <b>fine</b>!");
    await Promise.all([ann.waitForNavigation(), ann.click("div[id^='a'] form[action$='/comment'] button")]);
    await expectText(ann, "Thank you, that worked <b>fine</b>!");
    if (await ann.$("div[id^='a'] summary:has-text('Edit')")) throw new Error("Ann may edit Bob's answer");
    await bob.goto(question);
    await bob.click("div[id^='a'] summary:has-text('Edit')");
    await bob.fill("div[id^='a'] textarea[id^='body-']", "Yes: open the order in your account and choose Change address before it ships. It takes a minute.");
    await Promise.all([bob.waitForNavigation(), bob.click("div[id^='a'] form[action$='/edit'] button")]);
    await expectText(bob, "It takes a minute.");
    await ann.goto(question);
    await ann.screenshot({ path: `${SHOTS}/community-question.png`, fullPage: true });

    step("Bob proposes an article");
    await bob.goto(BASE + "/help/propose");
    await bob.fill("#p-title", "Changing a delivery address");
    await bob.fill("#p-category", "Delivery");
    await bob.fill("#p-body", "Until an order ships you can change where it goes: open the order in your account and choose Change address.");
    await Promise.all([bob.waitForNavigation(), bob.click("form[action='/help/propose'] button")]);
    await expectText(bob, "sent for review");
    await bob.goto(BASE + "/help?q=change%20address");
    await expectText(bob, "0 found");

    step("an agent publishes it");
    const staff = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await staff.goto(BASE + "/login");
    await staff.fill("#email", env("AGENT"));
    await staff.fill("#password", env("PASSWORD"));
    await Promise.all([staff.waitForNavigation(), staff.click("button[type=submit]")]);
    await staff.goto(BASE + "/community-desk");
    await expectText(staff, "Changing a delivery address");
    await staff.screenshot({ path: `${SHOTS}/community-desk.png`, fullPage: true });
    await Promise.all([staff.waitForNavigation(), staff.click("form[action$='/review'] button[value='1']")]);
    await expectText(staff, "is published");

    step("search finds it");
    await bob.goto(BASE + "/help?q=change%20address");
    await expectText(bob, "1 found");
    await Promise.all([bob.waitForNavigation(), bob.click("text=Changing a delivery address")]);
    await expectText(bob, "Was this helpful?");
    await Promise.all([bob.waitForNavigation(), bob.click("button[value='1']")]);
    await expectText(bob, "Thank you for telling us.");
    await bob.goto(BASE + "/help?q=change%20address");
    await bob.screenshot({ path: `${SHOTS}/help-search.png`, fullPage: true });

    step("the ticket form suggests it");
    const ann2 = await customer(browser, env("ANN"), true);
    await ann2.type("#t-subject", "change my addr", { delay: 20 });
    await ann2.waitForSelector("#t-suggest a", { timeout: 10000 });
    await Promise.all([ann2.waitForNavigation(), ann2.click("#t-suggest a")]);
    await expectText(ann2, "Was this helpful?");
    console.log("done");
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
