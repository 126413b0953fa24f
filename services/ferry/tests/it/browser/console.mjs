// Drives the review console in headless Chromium for the `browser::` tests: `node console.mjs SCENARIO PARAMS`,
// PARAMS a JSON object; prints one JSON object of what it saw on stdout (the Rust test asserts on it).
// playwright-core is found in FERRY_PLAYWRIGHT_DIR (scripts/prereqs installs it there); Chromium is Debian's.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';

const dir = process.env.FERRY_PLAYWRIGHT_DIR;
if (!dir) throw new Error('FERRY_PLAYWRIGHT_DIR is not set');
const { chromium } = createRequire(dir + '/')('playwright-core');

// Clicks the button named `name` and waits for the page its form leads to (after any redirect).
async function submit(page, name) {
  const [res] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name, exact: true }).click(),
  ]);
  return { status: res.status(), url: page.url(), text: await page.locator('main').innerText() };
}

const [scenario, paramsJson] = process.argv.slice(2);
const p = JSON.parse(paramsJson);
const origin = new URL(p.url).origin;

const browser = await chromium.launch({
  executablePath: process.env.FERRY_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
const out = { dialogs: [], console_errors: [], requests_elsewhere: [] };
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Any dialog is a payload that ran; any request to another origin an external resource.
  page.on('dialog', async (d) => { out.dialogs.push(d.message()); await d.dismiss(); });
  page.on('request', (r) => { if (!r.url().startsWith(origin)) out.requests_elsewhere.push(r.url()); });
  page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(m.text()); });

  // The sign-in URL lands on the queue.
  const signIn = await page.goto(p.url);
  out.sign_in_status = signIn.status();
  out.queue_url = page.url();
  out.queue_heading = await page.locator('h1').innerText();
  out.queue_rows = await page.locator('table.queue tbody tr').count();
  out.queue_titles = await page.locator('table.queue td.title').allInnerTexts();
  out.queue_scripts = await page.locator('script').count();
  const cookies = await context.cookies();
  out.cookie = cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path }));

  // Without the cookie every page is refused, and the sign-in URL works once.
  const stranger = await browser.newContext();
  const sp = await stranger.newPage();
  out.no_cookie_status = (await sp.goto(origin + '/')).status();
  out.no_cookie_job_status = (await sp.goto(origin + '/job/' + p.job)).status();
  const again = await sp.goto(p.url);
  out.second_sign_in_status = again.status();
  out.second_sign_in_text = await sp.locator('main').innerText();
  await stranger.close();

  // Open the job from the queue.
  await page.locator(`a[href="/job/${p.job}"]`).first().click();
  await page.waitForURL('**/job/' + p.job);
  out.job_heading = await page.locator('h1').innerText();
  out.description = await page.locator('pre.description').innerText();
  out.code_lines = await page.locator('table.code').first().locator('tr').count();
  out.code_text = await page.locator('table.code').first().innerText();
  out.escapes_marked = await page.locator('span.esc').count();
  out.job_scripts = await page.locator('script').count();
  out.job_svgs = await page.locator('svg').count();
  out.job_iframes = await page.locator('iframe, object, embed').count();
  out.buttons = await page.getByRole('button').allInnerTexts();

  if (scenario === 'low') {
    // A form whose CSRF token was removed is refused, and changes nothing.
    await page.locator('form:has(input[name="decision"][value="reject"]) input[name="csrf"]').evaluate((e) => e.remove());
    await page.locator('form:has(input[name="decision"][value="reject"]) textarea').fill('no');
    const [refused] = await Promise.all([
      page.waitForNavigation(),
      page.getByRole('button', { name: 'Reject', exact: true }).click(),
    ]);
    out.no_csrf_status = refused.status();
    out.no_csrf_text = await page.locator('main').innerText();
    // A POST with the browser's own cookie but no token, as another tab or a script would send it.
    const bare = await context.request.post(origin + '/job/' + p.job + '/decision', {
      form: { decision: 'approve', seen: 'x' }, maxRedirects: 0,
    });
    out.bare_post_status = bare.status();

    // Approve from the page.
    await page.goto(origin + '/job/' + p.job);
    out.approve = await submit(page, 'Approve');
    out.after_approve_flash = await page.locator('.flash').innerText();
    out.after_approve_state = await page.locator('dd.state').innerText();

    // The second job: the page is open when the command line decides it; the page's decision is then refused.
    await page.goto(origin + '/job/' + p.job2);
    execFileSync(p.ferry, ['review', 'reject', '--config', p.config, '--key', p.key, p.job2, '--reason', 'from the CLI']);
    await page.locator('form:has(input[name="decision"][value="return"]) textarea').fill('please change');
    const [stale] = await Promise.all([
      page.waitForNavigation(),
      page.getByRole('button', { name: 'Return', exact: true }).click(),
    ]);
    out.stale_status = stale.status();
    out.stale_text = await page.locator('main').innerText();

    await page.goto(origin + '/audit');
    out.audit_rows = await page.locator('table.audit tbody tr').count();
    out.audit_text = await page.locator('table.audit').innerText();
  }

  if (scenario === 'high') {
    const section = (name) => page.locator('section.file', { has: page.locator('h3', { hasText: name }) });
    out.files = await page.locator('section.file h3').allInnerTexts();
    const csv = section('outputs/report.csv');
    out.csv_headers = await csv.locator('table.csv th').allInnerTexts();
    out.csv_cells = await csv.locator('table.csv td').allInnerTexts();
    out.csv_findings = await csv.locator('li.finding').allInnerTexts();
    out.svg_text = await section('outputs/evil.svg').locator('table.code').innerText();
    out.html_text = await section('outputs/page.html').locator('table.code').innerText();
    out.bin_hex = await section('outputs/blob.bin').locator('pre.hex').innerText();
    out.bin_findings = await section('outputs/blob.bin').locator('li.finding').allInnerTexts();
    out.stdout_text = await section('stdout').innerText();
    const img = section('outputs/plot.png').locator('img');
    out.images = await page.locator('img').count();
    out.png_width = await img.evaluate((e) => e.complete ? e.naturalWidth : -1);
    const dl = await context.request.get(origin + '/job/' + p.job + '/file/2');
    out.download_disposition = dl.headers()['content-disposition'];
    out.download_type = dl.headers()['content-type'];
    const svgAsImage = await context.request.get(origin + '/job/' + p.job + '/image/' + p.svg_index);
    out.svg_image_status = svgAsImage.status();
    const csp = (await context.request.get(origin + '/job/' + p.job)).headers()['content-security-policy'];
    out.csp = csp;

    // Release from the page, withholding one file.
    await page.getByRole('checkbox', { name: 'Withhold outputs/blob.bin' }).check();
    await page.locator('form:has(input[name="decision"][value="release"]) textarea[name="reason"]').fill('binary data stays');
    out.release = await submit(page, 'Release');
    out.after_release_flash = await page.locator('.flash').innerText();
    out.after_release_state = await page.locator('dd.state').innerText();
    out.buttons_after = await page.getByRole('button').allInnerTexts();
  }
  out.final_dialogs = out.dialogs.length;
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
