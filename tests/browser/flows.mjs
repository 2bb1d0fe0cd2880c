// The pages of Gatehouse in headless Chromium, as their users meet them: a new hire
// activates from the emailed link, a user resets with a security answer, an owner signs
// in from the approval email and approves, another rejects with a reason, an expired
// link, a post without the CSRF token. axe-core runs on every page (WCAG 2.1 AA), any
// Content-Security-Policy violation fails, and each page is saved as a screenshot.
//
// Run by tests/it/browser.rs, which starts the server, seeds the practice and passes:
// BASE_URL, OUTBOX (the folder of .eml files), SHOTS (where screenshots go), APPROVE_LINK,
// REJECT_LINK, EXPIRED_LINK (paths), PUBLIC_URL (what the emails' links start with).

import { chromium } from "playwright-core";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("BASE_URL");
const OUTBOX = env("OUTBOX");
const SHOTS = env("SHOTS");
const PUBLIC_URL = env("PUBLIC_URL");
const AXE = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
const OWNER_PASSWORD = "sunrise owner passphrase";
const STAFF_PASSWORD = "correct horse battery staple";

const problems = [];
const fail = (what) => {
  problems.push(what);
  console.log(`FAIL ${what}`);
};

/** The text of every email to `to`, quoted-printable decoded, oldest first. */
function emailsTo(to) {
  return readdirSync(OUTBOX)
    .filter((f) => f.endsWith(".eml"))
    .sort()
    .map((f) => readFileSync(join(OUTBOX, f), "utf8"))
    .filter((text) => new RegExp(`^To:.*${to}`, "mi").test(text))
    .map((text) =>
      text
        .replace(/=\r?\n/g, "")
        .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16))),
    );
}

async function waitForEmail(to, count, matching = /./) {
  for (let i = 0; i < 400; i++) {
    const found = emailsTo(to).filter((t) => matching.test(t));
    if (found.length >= count) return found[count - 1];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no email ${count} to ${to}`);
}

function setupLinkIn(text) {
  const escaped = PUBLIC_URL.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = text.match(new RegExp(`${escaped}(/account/setup\\?token=[A-Za-z0-9_-]+)`));
  if (!match) throw new Error("no setup link in the email");
  return match[1];
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) fail(`CSP: ${message.text()}`);
  });
  page.on("pageerror", (error) => fail(`page error: ${error.message}`));
  return page;
}

/** Screenshot, then axe-core at WCAG 2.1 AA (evaluated through the driver, so the page's
 * CSP stays in force). */
async function check(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  for (const v of result.violations) {
    fail(`axe on ${name}: ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  }
  console.log(`page ${name}: ${result.passes.length} axe rules pass, ${result.violations.length} violations`);
}

/** Does `action` (a click, a key) and waits for the page it posts to load. */
async function submit(page, action) {
  await Promise.all([page.waitForNavigation(), action()]);
}

async function expectText(page, text, what) {
  const body = await page.textContent("body");
  if (!body.includes(text)) fail(`${what}: "${text}" not on ${page.url()}`);
}

async function flow(name, body) {
  try {
    await body();
    console.log(`ok ${name}`);
  } catch (error) {
    fail(`${name}: ${error.stack || error}`);
  }
}

await flow("a new hire activates their account from the emailed link", async () => {
  const link = setupLinkIn(await waitForEmail("nina@", 1));
  const page = await newPage();
  await page.goto(BASE + link);
  if (page.url().includes("token=")) fail("the token stayed in the URL");
  await expectText(page, "Nina Novak", "setup page");
  await expectText(page, "Sunrise", "setup page");
  await check(page, "setup");
  await page.fill("#new_password", "a quiet harbor at dawn");
  await page.fill("#confirm_password", "a quiet harbor at dusk");
  for (const [n, q, a] of [[1, "First pet?", "Rex"], [2, "First street?", "Elm"], [3, "First teacher?", "Ms Lee"]]) {
    await page.fill(`#question${n}`, q);
    await page.fill(`#answer${n}`, a);
  }
  await submit(page, () => page.click("button[type=submit]"));
  await expectText(page, "The two passwords are not the same.", "mismatch");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  if (focused !== "confirm_password") fail(`focus is on ${focused}, not the first error`);
  await check(page, "setup-error");
  await page.fill("#new_password", "a quiet harbor at dawn");
  await page.fill("#confirm_password", "a quiet harbor at dawn");
  for (const [n, q, a] of [[1, "First pet?", "Rex"], [2, "First street?", "Elm"], [3, "First teacher?", "Ms Lee"]]) {
    await page.fill(`#question${n}`, q);
    await page.fill(`#answer${n}`, a);
  }
  await submit(page, () => page.keyboard.press("Enter"));
  await expectText(page, "is ready", "setup done");
  await check(page, "setup-done");
});

await flow("a user asks for a reset and resets with a security answer", async () => {
  const page = await newPage();
  await page.goto(BASE + "/account/reset");
  await check(page, "reset");
  await page.fill("#username", "nina");
  await submit(page, () => page.click("button[type=submit]"));
  await expectText(page, "If an account matches", "reset answer");
  const link = setupLinkIn(await waitForEmail("nina@", 2));
  await page.goto(BASE + link);
  await expectText(page, "Reset your password", "reset page");
  await page.selectOption("#current_question", "First pet?");
  await page.fill("#current_answer", "rex");
  await page.fill("#new_password", "a brand new passphrase here");
  await page.fill("#confirm_password", "a brand new passphrase here");
  for (const [n, q, a] of [[1, "Best friend?", "Ana"], [2, "Home town?", "Bend"], [3, "First car?", "Civic"]]) {
    await page.fill(`#question${n}`, q);
    await page.fill(`#answer${n}`, a);
  }
  await check(page, "reset-form");
  await submit(page, () => page.click("button[type=submit]"));
  await expectText(page, "is ready", "reset done");
});

async function signInFrom(page, link, username, password) {
  await page.goto(BASE + link);
  if (!page.url().includes("/signin")) fail(`${link} did not ask to sign in`);
  await page.fill("#username", username);
  await page.fill("#password", password);
  await submit(page, () => page.click("button[type=submit]"));
  if (!page.url().endsWith(link)) fail(`after sign-in at ${page.url()}, not ${link}`);
}

await flow("an owner opens the approval link, signs in, ticks the terms and approves", async () => {
  const page = await newPage();
  await page.goto(BASE + process.env.APPROVE_LINK);
  await check(page, "signin");
  await signInFrom(page, process.env.APPROVE_LINK, "olivia", OWNER_PASSWORD);
  await expectText(page, "Add 2 EHR licenses", "request page");
  await check(page, "request");
  await page.check("#accept_terms");
  await submit(page, () => page.click("button:has-text('Approve')"));
  for (let i = 0; i < 100 && !(await page.textContent(".status")).includes("applied"); i++) {
    await new Promise((r) => setTimeout(r, 100));
    await page.reload();
  }
  await expectText(page, "applied", "approved request");
  await check(page, "request-applied");
  await page.goto(BASE + "/requests");
  await check(page, "inbox");
});

await flow("an owner rejects with a reason that reaches the requester", async () => {
  const page = await newPage();
  await signInFrom(page, process.env.REJECT_LINK, "oscar", STAFF_PASSWORD);
  await page.fill("#reason", "we are over budget this quarter");
  await submit(page, () => page.click("button.danger"));
  await expectText(page, "rejected", "rejected request");
  await waitForEmail("adam@", 1, /over budget this quarter/);
});

await flow("an expired link says so and offers a new email", async () => {
  const page = await newPage();
  await page.goto(BASE + process.env.EXPIRED_LINK);
  await expectText(page, "This link has expired", "expired link");
  await check(page, "expired");
});

await flow("a post without the CSRF token is refused", async () => {
  const page = await newPage();
  const answer = await page.request.post(BASE + "/account/reset", { form: { username: "nina" } });
  if (answer.status() !== 403) fail(`a CSRF-less post answered ${answer.status()}`);
});

await browser.close();
console.log(problems.length ? `${problems.length} problem(s)` : "all flows passed");
process.exit(problems.length ? 1 : 0);
