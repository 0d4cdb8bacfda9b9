// Drives the console in Debian's headless Chromium with playwright-core (never a browser of
// its own): sign in, the sessions list, a session's waterfall, an event's chat transcript,
// its inclusion proof verified in the browser, the stats page, and a new event appearing in
// the live tail; a 10,000-span session's first paint is timed. Screenshots of each page go
// to the directory given. Usage: node console.mjs BASE_URL API_KEY SESSION BIG_SESSION DIR
import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const [base, key, session, bigSession, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const step = (name) => console.error(`console test: ${name}`);
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
// Ingests one event through the gateway, from the page (same origin), with the test's key.
async function post(event) {
  const status = await page.evaluate(async ([key, event]) => {
    const response = await fetch("/v1/events", { method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` }, body: JSON.stringify(event) });
    return `${response.status} ${await response.text()}`;
  }, [key, event]);
  if (!status.startsWith("2")) throw new Error(`ingesting ${event.event_id}: ${status}`);
}
try {
  const problems = [];
  page.on("pageerror", (error) => problems.push(String(error)));
  page.on("console", (message) => message.type() === "error" && problems.push(message.text()));
  // Nothing may load from anywhere but the gateway.
  page.on("request", (request) => {
    if (!request.url().startsWith(base)) problems.push(`request outside the gateway: ${request.url()}`);
  });

  step("sign in");
  await page.goto(`${base}/ui/`);
  await page.fill("input[name=key]", key);
  await page.click("button[type=submit]");
  await page.waitForSelector(`tr[data-session="${session}"]`);
  await page.screenshot({ path: `${shots}/sessions.png`, fullPage: true });

  step("keyboard: a row, then Enter, opens the session");
  await page.focus(`tr[data-session="${session}"]`);
  await page.keyboard.press("Enter");
  await page.waitForSelector(".trace .row");
  const rows = await page.locator(".trace .row").count();
  if (rows < 3) throw new Error(`the waterfall shows ${rows} spans`);
  await page.screenshot({ path: `${shots}/session.png`, fullPage: true });

  step("an event as a chat transcript, and its inclusion proof");
  await page.locator(".trace .row", { hasText: "gpt-4o" }).click();
  await page.waitForSelector(".chat .msg.user");
  const transcript = await page.locator(".chat").first().innerText();
  if (!transcript.includes("What is the refund policy?")) throw new Error(`transcript: ${transcript}`);
  await page.locator("button", { hasText: "Verify inclusion" }).first().click();
  await page.waitForSelector("span.ok", { timeout: 15000 });
  const verdict = await page.locator("span.ok").first().innerText();
  if (!verdict.startsWith("✓ included")) throw new Error(`inclusion: ${verdict}`);
  await page.screenshot({ path: `${shots}/event.png`, fullPage: true });

  step("a 5 MB tool result: shown cut, whole on demand, the page responsive");
  const opening = Date.now();
  await page.locator(".trace .row", { hasText: "export_report" }).click();
  await page.waitForSelector(".panel .clipped pre.json");
  const largeFirstPaint = Date.now() - opening;
  const shown = await page.locator(".panel .clipped pre.json").first().evaluate((pre) => pre.textContent.length);
  if (shown > 300 * 1024) throw new Error(`${shown} characters of the result rendered at first`);
  const showing = Date.now();
  await page.locator(".panel .clipped button", { hasText: "Show all" }).first().click();
  await page.waitForFunction(() => [...document.querySelectorAll(".panel pre.json")].some((pre) => pre.textContent.length > 5e6));
  const largeWhole = Date.now() - showing;
  // Responsive: the page answers a script call at once.
  const ping = Date.now();
  await page.evaluate(() => 1);
  const largePing = Date.now() - ping;
  await page.screenshot({ path: `${shots}/large-result.png` });

  step("the session's PROV-O downloads (fetched with the key)");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("button", { hasText: "Download PROV-O" }).click(),
  ]);
  if (!download.suggestedFilename().endsWith(".prov.jsonld")) throw new Error(`download: ${download.suggestedFilename()}`);
  const graph = JSON.parse(await readFile(await download.path(), "utf8"));
  if (!Array.isArray(graph["@graph"]) || !graph["@context"].prov) throw new Error("the download is not the PROV-O graph");

  step("stats: events by type per hour, tokens and cost by model");
  await post({ event_id: "console-model-1", tenant_id: "acme", project_id: "p", session_id: "s-models",
    type: "MODEL_INVOCATION_END", status: "COMPLETED", agent_name: "stats-agent",
    content: { kind: "llm_invocation", provider: "anthropic", model: "claude-sonnet", prompt_tokens: 1200, completion_tokens: 345 } });
  // Stored within a second or so: reload until the page shows it.
  const deadline = Date.now() + 15000;
  for (;;) {
    await page.goto(`${base}/ui/#/stats`);
    await page.reload();
    await page.waitForSelector(".chart.stacked, .error");
    if (await page.locator("table.models td", { hasText: "claude-sonnet" }).count()) break;
    if (Date.now() > deadline) throw new Error("the model call never reached the stats page");
    await page.waitForTimeout(500);
  }
  const modelRow = await page.locator("table.models tr", { hasText: "claude-sonnet" }).innerText();
  if (!modelRow.includes("1200") || !modelRow.includes("345")) throw new Error(`model row: ${modelRow}`);
  if (!(await page.locator(".chart.stacked .seg").count())) throw new Error("the chart stacks no types");
  const stray = await page.locator(".chart.stacked").innerText();
  if (stray.trim()) throw new Error(`text inside the chart: ${stray.slice(0, 80)}`);
  await page.screenshot({ path: `${shots}/stats.png`, fullPage: true });

  step("live tail: a new event appears");
  await page.goto(`${base}/ui/#/tail`);
  await page.waitForFunction(() => document.querySelector("main p")?.textContent.startsWith("Connected"));
  await post({ event_id: "console-live-1", tenant_id: "acme", project_id: "p", session_id: "s-live",
    type: "TOOL_CALL_START", status: "STARTED", agent_name: "tail-agent",
    content: { kind: "tool_call", name: "lookup" } });
  await page.waitForSelector('.tail .line[data-event="console-live-1"]', { timeout: 15000 });
  await page.screenshot({ path: `${shots}/tail.png`, fullPage: true });

  step("a 10,000-span session: first paint, and scrolling to the end");
  const started = Date.now();
  await page.goto(`${base}/ui/#/session/${encodeURIComponent(bigSession)}`);
  await page.waitForSelector(".trace .row");
  const firstPaint = Date.now() - started;
  const rendered = await page.locator(".trace .row").count();
  if (rendered > 200) throw new Error(`${rendered} rows in the DOM: the list is not virtualised`);
  await page.locator(".trace").evaluate((trace) => { trace.scrollTop = trace.scrollHeight; });
  await page.waitForTimeout(200);
  const last = await page.locator(".trace .row").last().getAttribute("data-index");
  if (Number(last) < 9990) throw new Error(`scrolled to the end but the last row is ${last}`);
  await page.screenshot({ path: `${shots}/big-session.png` });
  if (problems.length) throw new Error(`page problems: ${problems.join("; ")}`);
  console.log(JSON.stringify({ first_paint_ms: firstPaint, rows_in_dom: rendered,
    large_result: { first_paint_ms: largeFirstPaint, show_all_ms: largeWhole, ping_ms: largePing } }));
} catch (error) {
  // What the page showed when a step failed, for the test's output.
  await page.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  console.error(`page text at the failure:\n${await page.locator("main").innerText().catch(() => "")}`);
  throw error;
} finally {
  await browser.close();
}
