/**
 * The demo in a real browser: Chromium (through playwright-core) signs in at the development
 * provider, the SPA calls the API through the gateway, asks for more scopes (incremental
 * consent) and signs out. It also writes the README's screenshot, docs/demo.png.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot, startDemo } from '../../examples/demo/stack.js';
import { freePort, LogCapture } from '../helpers/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT = join(repoRoot(), 'docs', 'demo.png');

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).textContent()) ?? '').trim();
}

/** Waits for the API result pane to show the answer to `path`, and returns what it says. */
async function apiResult(page: Page, path: string) {
  await page.waitForFunction(
    (p) => {
      const result = document.getElementById('api-result');
      const buttons = [...document.querySelectorAll('#api-card button')] as HTMLButtonElement[];
      return result?.dataset.state !== 'idle' && document.getElementById('api-path')?.textContent === 'GET ' + p && buttons.every((b) => !b.disabled);
    },
    path,
  );
  const state = await page.locator('#api-result').getAttribute('data-state');
  const status = await text(page, '#api-status');
  const body = JSON.parse(await text(page, '#api-json')) as Record<string, unknown>;
  return { state, status, body };
}

async function resetResult(page: Page) {
  await page.evaluate(() => {
    document.getElementById('api-result')!.dataset.state = 'idle';
    document.getElementById('api-path')!.textContent = '';
  });
}

if (!existsSync(CHROMIUM)) {
  const message = `CHROMIUM NOT FOUND at ${CHROMIUM}: the real-browser demo test is SKIPPED. Install it with "apt-get install -y chromium" (or set CHROMIUM_PATH).`;
  console.error(`\n${'!'.repeat(message.length)}\n${message}\n${'!'.repeat(message.length)}\n`);
  // CI installs Chromium (.ci/run), so there a missing browser is a broken setup, not a skip.
  if (process.env.CI) t.fail(message);
  else t.skip(message);
} else {
  t.test('a user signs in through the demo SPA in Chromium, calls the API, grants a new scope and signs out', async (t) => {
    const logs = new LogCapture();
    const demo = await startDemo({ port: await freePort(), logStream: logs });
    t.teardown(() => demo.close());

    const profile = await mkdtemp(join(tmpdir(), 'bff-chromium-'));
    t.teardown(() => rm(profile, { recursive: true, force: true }));
    const context: BrowserContext = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 1200, height: 760 },
      deviceScaleFactor: 1.5,
    });
    t.teardown(() => context.close());
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));

    t.comment(`demo at ${demo.url}, provider at ${demo.issuer}`);
    await page.goto(demo.url);
    await page.locator('#signed-out').waitFor();
    t.pass('the SPA opens signed out');

    // Sign in: the gateway sends the browser to the provider's sign-in page.
    await page.click('#sign-in');
    await page.waitForURL((url) => url.origin === new URL(demo.issuer).origin);
    await page.fill('input[name=login]', 'alice');
    await page.fill('input[name=password]', 'any password');
    await Promise.all([page.waitForURL((url) => url.href === demo.url), page.click('button[type=submit]')]);
    t.pass('after the provider, the browser lands back on the SPA');

    await page.locator('#signed-in').waitFor();
    t.equal(await text(page, '#user-name'), 'alice', 'the SPA shows who signed in');
    t.equal(await text(page, '#claims tr[data-claim="sub"] td'), 'alice', 'the claims show the subject');
    t.equal(await text(page, '#claims tr[data-claim="name"] td'), 'alice', 'the claims show the name');
    const cookies = await context.cookies(demo.url);
    t.ok(cookies.length > 0 && cookies.every((c) => c.httpOnly), 'the browser holds only HttpOnly cookies from the gateway');
    t.notMatch(await page.content(), /eyJ[A-Za-z0-9_-]+\./, 'no token is anywhere in the page');

    await page.click('#call-api');
    let result = await apiResult(page, '/api/whoami');
    t.equal(result.state, 'ok', `the API answered: ${result.status}`);
    t.equal(await text(page, '#api-subject'), 'alice', 'the API saw the user as the token subject');
    t.equal(await text(page, '#api-scopes'), 'api.read', 'the API saw exactly the route scopes');
    t.equal(result.body.aud, 'https://api.demo.example', 'the token is for the API resource');

    await mkdir(join(repoRoot(), 'docs'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    t.ok(existsSync(SCREENSHOT), 'the screenshot of the signed-in SPA is written to docs/demo.png');

    // The admin route needs api.write, not asked for at sign-in.
    await resetResult(page);
    await page.click('#call-admin');
    result = await apiResult(page, '/api-admin/whoami');
    t.equal(result.status.split(' ')[0], '401', 'the admin route answers 401');
    t.equal(result.body.error, 'consent_required', 'because the user has not granted api.write yet');
    const link = page.locator('#login-link');
    await link.waitFor();
    t.match(await link.getAttribute('href'), /^\/auth\/login\?.*scopes=api\.write/, 'the SPA offers the loginUrl that asks for api.write');

    // Follow it: the provider still has a session, so the browser comes straight back and the SPA repeats the call.
    await Promise.all([page.waitForEvent('load'), link.click()]);
    t.equal(page.url(), demo.url, 'the browser comes back to the SPA');
    result = await apiResult(page, '/api-admin/whoami');
    t.equal(result.state, 'ok', `after consent the admin call works: ${result.status}`);
    t.equal(await text(page, '#api-subject'), 'alice', 'still the same user');
    t.equal(await text(page, '#api-scopes'), 'api.write', 'the admin route got a token with api.write');

    await resetResult(page);
    await page.click('#call-api');
    result = await apiResult(page, '/api/whoami');
    t.equal(result.state, 'ok', 'the first route still works after the new sign-in');
    t.equal(await text(page, '#api-scopes'), 'api.read', 'with its own scopes');

    // Sign out: gateway, then the provider's end-session page, then back to the SPA.
    await page.click('#sign-out');
    await page.waitForURL((url) => url.origin === new URL(demo.issuer).origin);
    const confirm = page.locator('button[name=logout]');
    if (await confirm.count()) await Promise.all([page.waitForURL((url) => url.href === demo.url), confirm.click()]);
    else await page.waitForURL((url) => url.href === demo.url);
    await page.locator('#signed-out').waitFor();
    t.pass('after sign-out the SPA shows the signed-out state');

    await page.click('#call-api');
    result = await apiResult(page, '/api/whoami');
    t.equal(result.status.split(' ')[0], '401', 'the API route answers 401 after sign-out');
    t.equal(result.body.error, 'session_expired', 'because there is no session any more');
    t.match(await page.locator('#login-link').getAttribute('href'), /^\/auth\/login/, 'and the SPA offers to sign in again');

    t.same(pageErrors, [], 'no script errors in the page');
    t.notMatch(logs.text, /eyJ[A-Za-z0-9_-]+\.eyJ/, 'no token in the gateway logs');
  });
}
