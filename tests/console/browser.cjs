// Drives Debian's Chromium through herald's console with playwright-core (run by
// tests/console_browser.rs, which starts herald and a fake DingTalk robot and checks what the
// robot receives). Every step asserts what a person would see; the first failure exits 1.
//
// Environment: HERALD_URL, ADMIN_TOKEN, CHROMIUM (the browser's path), SCREENSHOTS (a folder),
// PAYLOAD (a file with a Sentry issue payload for the playground).
const { chromium } = require("playwright-core");
const fs = require("fs");
const path = require("path");

const base = process.env.HERALD_URL;
const shots = process.env.SCREENSHOTS;

function check(condition, what) {
  if (!condition) {
    throw new Error(`not as expected: ${what}`);
  }
  console.log(`ok: ${what}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 960, height: 640 } });
    const page = await context.newPage();
    page.setDefaultTimeout(10000);

    // Sign in: a wrong token first.
    await page.goto(`${base}/ui/`);
    check(page.url().endsWith("/ui/sign-in"), "an anonymous visit lands on the sign-in form");
    await page.getByLabel("Admin token").fill("not-the-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    check(await page.getByText("Wrong admin token").isVisible(), "a wrong token says so");
    check(!(await page.content()).includes("oncall"), "and shows nothing else");
    await shot(page, "sign-in");
    await page.getByLabel("Admin token").fill(process.env.ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    check(page.url().endsWith("/ui/overview"), "the right token opens the overview");
    for (const name of ["Overview", "Deliveries", "Dead letters", "Playground"]) {
      check(await page.getByRole("link", { name, exact: true }).isVisible(), `the ${name} link`);
    }
    check(await page.getByRole("cell", { name: "dingtalk" }).isVisible(), "the target's kind");
    await shot(page, "overview");

    // Pause and resume.
    await page.getByRole("button", { name: "Pause oncall" }).click();
    check(await page.getByText("paused by an operator").isVisible(), "paused");
    await page.getByRole("button", { name: "Resume oncall" }).click();
    check(await page.getByRole("button", { name: "Pause oncall" }).isVisible(), "resumed");

    // Deliveries: the delivered alert and the dead one, with the robot's answer.
    await page.getByRole("link", { name: "Deliveries", exact: true }).click();
    await page.getByRole("heading", { name: "Deliveries" }).waitFor();
    check((await page.locator("article").count()) >= 2, "both alerts are listed");
    check(await page.locator(".outcome.delivered").first().isVisible(), "a delivery");
    check((await page.content()).includes("310000"), "the robot's errcode");
    await shot(page, "deliveries");

    // Dead letters: replay one by a click (the Rust side sees the robot receive it).
    await page.getByRole("link", { name: "Dead letters", exact: true }).click();
    await page.getByRole("heading", { name: "Dead letters" }).waitFor();
    check((await page.content()).includes("errcode 310000"), "the dead letter's last answer");
    await shot(page, "dead-letters");
    await page.getByRole("button", { name: "Replay", exact: true }).click();
    await page.getByText("No dead letters.").waitFor();
    check(true, "the dead letter was replayed");

    // The playground renders a pasted payload.
    await page.getByRole("link", { name: "Playground", exact: true }).click();
    await page.getByLabel("Payload").fill(fs.readFileSync(process.env.PAYLOAD, "utf8"));
    await page.getByLabel("Target").selectOption("oncall");
    await page.getByRole("button", { name: "Render" }).click();
    await page.getByText("As the chat shows it").waitFor();
    check((await page.locator(".markdown").textContent()).includes("New issue"), "the message, rendered");
    check(await page.getByText("bytes of the request body").isVisible(), "its size against the limit");
    await page.locator("#result").scrollIntoViewIfNeeded();
    await page.evaluate(() => window.scrollBy(0, document.querySelector("#result").getBoundingClientRect().top - 10));
    await shot(page, "playground");

    // A form on another origin posting to herald changes nothing.
    const token = await page.locator("input[name=form_token]").first().inputValue();
    const evil = await context.newPage();
    await evil.goto(
      "data:text/html," +
        encodeURIComponent(
          `<form method="post" action="${base}/ui/targets/oncall/pause">` +
            `<input name="form_token" value="${token}"></form>` +
            "<script>document.forms[0].submit()</script>",
        ),
    );
    await evil.waitForLoadState("load");
    await evil.waitForTimeout(500);
    await page.goto(`${base}/ui/overview`);
    check(!(await page.getByText("paused by an operator").isVisible()), "a cross-site POST is refused");

    // Signing out ends the session.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.goto(`${base}/ui/overview`);
    check(page.url().endsWith("/ui/sign-in"), "signed out");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
