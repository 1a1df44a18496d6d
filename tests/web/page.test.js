// The page, end to end, in real headless Chromium against the real otpd
// binary and a real SMTP server. Screenshots go to test-output/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const root = resolve(import.meta.dirname, "../..");
const shots = join(root, "test-output", "screenshots");
const python = process.env.SMTP_CATCHER_PYTHON || join(root, ".venv/bin/python");
const otpdBin = process.env.OTPD_BIN || join(root, "target/debug/otpd");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const SECRET = "ab".repeat(32);

let browser;
const children = [];

function waitForLine(stream, pattern, what) {
  return new Promise((resolvePromise, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${seen}`)), 30000);
    stream.on("data", (chunk) => {
      seen += chunk.toString();
      const match = seen.match(pattern);
      if (match) {
        clearTimeout(timer);
        resolvePromise(match);
      }
    });
  });
}

async function startCatcher() {
  const dir = mkdtempSync(join(tmpdir(), "otpd-mail-"));
  const child = spawn(python, [join(root, "tests/support/smtp_catcher.py"), "--dir", dir], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const [, port] = await waitForLine(child.stdout, /READY (\d+)/, "the SMTP catcher");
  return { dir, port: Number(port) };
}

async function startOtpd(smtpPort, extra = {}) {
  const dir = mkdtempSync(join(tmpdir(), "otpd-web-"));
  const env = { PATH: process.env.PATH };
  Object.assign(env, {
    OTPD_LISTEN: "127.0.0.1:0",
    OTPD_STORE: `sqlite://${dir}/otpd.db`,
    OTPD_MAILER: `smtp://127.0.0.1:${smtpPort}`,
    OTPD_SECRET: SECRET,
    OTPD_PRODUCT_NAME: "Acme Sign-in",
    OTPD_IP_REQUESTS_PER_MINUTE: "0",
    ...extra,
  });
  const child = spawn(otpdBin, ["serve"], { cwd: dir, env, stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  const [, url] = await waitForLine(child.stderr, /otpd is serving.*?(http:\/\/127\.0\.0\.1:\d+)\//, "otpd");
  return url;
}

/** The code of the `n`th mail to `to` (the subject starts with it). */
async function codeFor(mail, to, n = 1) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const codes = readdirSync(mail.dir)
      .filter((f) => f.endsWith(".eml"))
      .sort()
      .map((f) => readFileSync(join(mail.dir, f), "utf8"))
      .filter((raw) => new RegExp(`^To: ${to}\\r?$`, "mi").test(raw))
      .map((raw) => raw.match(/^Subject: (\d{6}) /m)[1]);
    if (codes.length >= n) return codes[n - 1];
    if (Date.now() > deadline) throw new Error(`no mail ${n} to ${to}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function newPage(width = 1024, height = 768, colorScheme = "light") {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme });
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") page.problems.push(msg.text());
  });
  page.on("pageerror", (err) => page.problems.push(String(err)));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** axe-core on the current state of the page: no serious or critical violations. */
async function assertAccessible(page, where) {
  // Through DevTools, not a <script>: the page's CSP rightly refuses inline scripts.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${where}: ${JSON.stringify(bad)}`);
}

let mail;
let base;

before(async () => {
  mkdirSync(shots, { recursive: true });
  mail = await startCatcher();
  base = await startOtpd(mail.port);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      "--no-first-run",
    ],
  });
  console.log(`screenshots: ${shots}`);
});

after(async () => {
  if (browser) await browser.close();
  for (const child of children) child.kill("SIGKILL");
});

for (const [label, width, height] of [["desktop", 1024, 768], ["phone-320", 320, 640]]) {
  test(`${label}: ask for a code, read it from the mail, type it, see success`, async () => {
    const page = await newPage(width, height);
    const response = await page.goto(base + "/");
    assert.match(response.headers()["content-security-policy"], /default-src 'none'/);
    assert.equal(await page.title(), "Verify your email — Acme Sign-in");
    assert.equal(await page.evaluate(() => document.activeElement.id), "email", "focus starts in the field");
    await assertAccessible(page, `${label} email step`);
    await shot(page, `${label}-1-email`);

    const address = `web-${label}@example.com`;
    await page.fill("#email", address.toUpperCase());
    await page.keyboard.press("Enter");
    await page.waitForSelector("#step-code:not([hidden])");
    assert.equal(await page.textContent("#sent-to"), address);
    assert.equal(await page.evaluate(() => document.activeElement.id), "code", "focus moves to the code");
    const resend = await page.textContent("#resend");
    assert.match(resend, /Send a new code in \d+ s/);
    assert.equal(await page.isDisabled("#resend"), true);
    await assertAccessible(page, `${label} code step`);
    await shot(page, `${label}-2-code`);

    const code = await codeFor(mail, address);
    await page.keyboard.type(code);
    await page.waitForSelector("#step-done:not([hidden])");
    assert.equal(await page.textContent("#verified-email"), address);
    await assertAccessible(page, `${label} success`);
    await shot(page, `${label}-3-verified`);

    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at ${width}px (overflow ${overflow}px)`);
    assert.deepEqual(page.problems, [], "no console errors or CSP violations");
    await page.context().close();
  });
}

test("a wrong code shows the attempts left and keeps the address", async () => {
  const page = await newPage();
  await page.goto(base + "/");
  await page.fill("#email", "wrong@example.com");
  await page.click("#send");
  await page.waitForSelector("#step-code:not([hidden])");
  const code = await codeFor(mail, "wrong@example.com");
  const wrong = code === "000000" ? "111111" : "000000";
  await page.fill("#code", wrong);
  await page.waitForSelector("#code-error:not([hidden])");
  assert.match(await page.textContent("#code-error"), /not right\. 4 attempts left/);
  assert.equal(await page.getAttribute("#code-error", "role"), "alert");
  assert.equal(await page.textContent("#sent-to"), "wrong@example.com");
  await shot(page, "desktop-4-wrong-code");

  // A pasted code with spaces is cleaned up and submitted.
  await page.fill("#code", `${code.slice(0, 3)} ${code.slice(3)}`);
  await page.waitForSelector("#step-done:not([hidden])");
  await page.context().close();
});

test("keyboard only: tab to the button, another address keeps what was typed", async () => {
  const page = await newPage();
  await page.goto(base + "/");
  await page.keyboard.type("keys@example.com");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "send");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#step-code:not([hidden])");
  await page.focus("#change");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#step-email:not([hidden])");
  assert.equal(await page.inputValue("#email"), "keys@example.com");
  assert.equal(await page.evaluate(() => document.activeElement.id), "email");
  await page.context().close();
});

test("refusals are explained: invalid address, cooldown, domain, network", async () => {
  const page = await newPage();
  await page.goto(base + "/");
  await page.fill("#email", "not an address");
  await page.click("#send");
  await page.waitForSelector("#email-error:not([hidden])");
  assert.match(await page.textContent("#email-error"), /does not look like an email address/);
  assert.equal(await page.inputValue("#email"), "not an address", "nothing typed is lost");

  // Cooldown: a second request for the same address within a minute.
  await page.fill("#email", "again@example.com");
  await page.click("#send");
  await page.waitForSelector("#step-code:not([hidden])");
  await page.click("#change");
  await page.click("#send");
  await page.waitForSelector("#email-error:not([hidden])");
  assert.match(await page.textContent("#email-error"), /Too many requests/);
  assert.match(await page.textContent("#send"), /Try again in \d+ s/);
  await shot(page, "desktop-5-rate-limited");

  // The network fails.
  await page.route("**/GenerateOTP", (route) => route.abort("connectionrefused"));
  await page.evaluate(() => {
    document.getElementById("send").disabled = false;
  });
  await page.fill("#email", "offline@example.com");
  await page.click("#send");
  await page.waitForFunction(() => /Could not reach/.test(document.getElementById("email-error").textContent));
  await page.context().close();

  const restricted = await startOtpd(mail.port, { OTPD_ALLOWED_DOMAINS: "corp.example" });
  const page2 = await newPage();
  await page2.goto(restricted + "/");
  await page2.fill("#email", "someone@gmail.example");
  await page2.click("#send");
  await page2.waitForSelector("#email-error:not([hidden])");
  assert.match(await page2.textContent("#email-error"), /cannot be verified here/);
  await page2.context().close();
});

test("dark mode passes the accessibility check too", async () => {
  const page = await newPage(1024, 768, "dark");
  await page.goto(base + "/");
  await assertAccessible(page, "dark email step");
  await page.fill("#email", "dark@example.com");
  await page.click("#send");
  await page.waitForSelector("#step-code:not([hidden])");
  await page.fill("#code", "00");
  await page.click("#verify");
  await page.waitForSelector("#code-error:not([hidden])");
  await assertAccessible(page, "dark code step with an error");
  await shot(page, "dark-code-error");
  await page.context().close();
});
