// Drives Debian's chromium through the dashboard like a person would, against a
// skiff that tests/system_dashboard.rs started (with a real libvirt guest host).
// Environment: SKIFF_URL, SKIFF_USER, SKIFF_PASSWORD, SKIFF_VM_PASSWORD,
// SKIFF_SSH_KEY, SCREENSHOTS (a directory). Exits non-zero at the first failed step.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';

const base = process.env.SKIFF_URL;
const user = process.env.SKIFF_USER;
const password = process.env.SKIFF_PASSWORD;
const vmPassword = process.env.SKIFF_VM_PASSWORD;
const sshKey = process.env.SKIFF_SSH_KEY;
const shots = process.env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });

const started = Date.now();
function step(msg) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
page.on('dialog', (d) => d.accept());
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));

// The VM page reloads itself once a VM settles: a screenshot that a reload interrupts
// (seen under a loaded CI host) is taken again once the page has loaded.
async function shot(name) {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.waitForLoadState('load');
      await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true, timeout: 15_000 });
      return;
    } catch (e) {
      if (attempt >= 3) throw e;
      console.log(`screenshot ${name}: ${String(e).split('\n')[0]}; again`);
    }
  }
}
async function flash() {
  return (await page.locator('.flash').allTextContents()).join(' | ');
}
// Polls a condition across the page's own reloads (it reloads when a VM settles).
async function until(what, cond, timeout) {
  const end = Date.now() + timeout;
  let last = '';
  for (;;) {
    try {
      if (await cond()) return;
    } catch (e) {
      last = String(e);
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} ${last}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
// Types into the VNC console. noVNC sends scancodes (QEMU's extended key events),
// so shifted characters need a real Shift press around the unshifted key.
async function typeVnc(text) {
  const shifted = { '>': 'Period', '<': 'Comma', '|': 'Backslash', '_': 'Minus' };
  for (const ch of text) {
    const code = shifted[ch] || (/[A-Z]/.test(ch) ? `Key${ch}` : null);
    if (code) {
      await page.keyboard.down('Shift');
      await page.keyboard.press(code);
      await page.keyboard.up('Shift');
    } else {
      await page.keyboard.type(ch);
    }
    await page.waitForTimeout(30);
  }
}
async function statusText() {
  return (await page.locator('#vm-status').textContent({ timeout: 2000 })) || '';
}
async function waitStatus(want, timeout) {
  await until(`status ${want}`, async () =>
    (await page.locator('#vm-status-badge').getAttribute('data-status', { timeout: 2000 })) === want,
  timeout);
}

try {
  step('signed out, the dashboard sends us to sign in');
  await page.goto(`${base}/ui/vms`);
  assert.match(page.url(), /\/ui\/login\?next=%2Fui%2Fvms$/);
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', 'wrong password');
  await page.click('button[type=submit]');
  assert.match(await page.locator('#login-error').textContent(), /wrong user name or password/);
  await shot('login');
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/ui/vms`);
  step('signed in; the overview shows the hypervisor');
  await page.goto(`${base}/ui/`);
  assert.match(await page.locator('#accel').textContent(), /KVM|TCG/);
  await shot('overview');

  step('an SSH key through its form');
  await page.goto(`${base}/ui/ssh-keys`);
  await page.fill('#add-ssh-key input[name=name]', 'laptop');
  await page.fill('#add-ssh-key textarea[name=public_key]', sshKey);
  await page.click('#add-ssh-key button[type=submit]');
  assert.match(await flash(), /SSH key laptop added/);

  step('create a VM: an invalid password first, with its message next to the field');
  await page.goto(`${base}/ui/vms/new`);
  await page.fill('#f-name', 'web-1');
  await page.selectOption('#f-plan', '1');
  await page.check('input[name=password_mode][value=set]');
  await page.fill('#f-password', 'short');
  await page.check('input[name=ssh_keys]');
  await page.click('#create-submit');
  const err = page.locator('#err-password');
  assert.match(await err.textContent(), /at least 12 characters/);
  assert.equal(await page.getAttribute('#f-password', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#f-name'), 'web-1', 'the form keeps what was typed');
  await shot('vm-create-invalid');
  await page.check('input[name=password_mode][value=set]');
  await page.fill('#f-password', vmPassword);
  await page.click('#create-submit');
  await page.waitForURL(/\/ui\/vms\/[0-9a-f-]{36}$/);
  const vmUrl = page.url();
  assert.match(await flash(), /web-1 is being created/);
  step('watch it become active (the status updates itself)');
  await waitStatus('active', 300_000);
  await until('create succeeded', async () => /vm create succeeded/.test(await statusText()), 30_000);
  assert.match(await page.locator('#nics').textContent(), /10\.231\.0\.\d+\/27/);
  // The form's default: a VPC of its own, the second NIC.
  assert.match(await page.locator('#nics').textContent(), /vpc-web-1 \(VPC\)/);
  await shot('vm-detail');

  step("VPCs: the VM's own in the list with its member, a new one made and deleted");
  await page.goto(`${base}/ui/vpcs`);
  const ownRow = page.locator('#vpcs tr', { hasText: 'vpc-web-1' });
  assert.match(await ownRow.textContent(), /active/);
  assert.match(await ownRow.textContent(), /1 of 256/);
  const suggested = await page.inputValue('#create-vpc input[name=cidr]');
  assert.match(suggested, /^10\.\d+\.\d+\.0\/24$/);
  await page.fill('#create-vpc input[name=name]', 'backend');
  await page.click('#create-vpc button[type=submit]');
  assert.match(await flash(), /VPC backend \(10\.[0-9.]+\/24\) is made/);
  const backRow = page.locator('#vpcs tr', { hasText: 'backend' });
  assert.match(await backRow.textContent(), /active/);
  await shot('vpcs');
  await ownRow.locator('a').click();
  await page.waitForURL(/\/ui\/vpcs\/[0-9a-f-]{36}$/);
  assert.match(await page.locator('#members').textContent(), /web-1/);
  await shot('vpc-detail');
  await page.goto(`${base}/ui/vpcs`);
  await backRow.locator('button:has-text("Delete")').click();
  assert.match(await flash(), /VPC backend deleted/);
  assert.equal(await page.locator('#vpcs tr', { hasText: 'backend' }).count(), 0);

  step('a floating IP: reserved, then released');
  await page.goto(`${base}/ui/ips`);
  await page.click('#reserve-ip button[type=submit]');
  const reserved = (await flash()).match(/IP (10\.234\.0\.\d+) reserved/);
  assert.ok(reserved, 'the flash names the address');
  const ipRow = page.locator('#ips tr', { hasText: reserved[1] });
  assert.match(await ipRow.textContent(), /free/);
  await shot('ips');
  await ipRow.locator('button:has-text("Release")').click();
  assert.match(await flash(), new RegExp(`IP ${reserved[1].replace(/\./g, '\\.')} released`));
  assert.equal(await page.locator('#ips tr', { hasText: reserved[1] }).count(), 0);
  await page.goto(vmUrl);

  step('open its console: noVNC connects through the websocket proxy');
  await page.click('#open-console');
  await page.waitForFunction(
    () => document.querySelector('#console-status')?.dataset.state === 'connected',
    null, { timeout: 60_000, polling: 250 });
  // The framebuffer arrived: noVNC sized its canvas to the guest's display.
  await page.waitForFunction(() => {
    const c = document.querySelector('#screen canvas');
    return c && c.width > 0 && c.height > 0;
  }, null, { timeout: 30_000, polling: 250 });
  const dims = await page.evaluate(() => {
    const c = document.querySelector('#screen canvas');
    return `${c.width}x${c.height}`;
  });
  step(`console framebuffer ${dims}; typing into the guest's VGA shell`);
  await until('text on the guest screen', async () => page.evaluate(() => {
    const c = document.querySelector('#screen canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 200) lit++;
    return lit > 50;
  }), 30_000);
  await page.click('#screen canvas');
  await typeVnc('echo typed-through-vnc >/dev/ttyS0');
  await page.keyboard.press('Enter');
  await page.waitForTimeout(1500);
  await shot('console');
  await page.goto(vmUrl);
  await until('the typed line in the serial log', async () => {
    if (/typed-through-vnc/.test(await page.locator('#serial-log').textContent({ timeout: 2000 }))) return true;
    await page.reload();
    return false;
  }, 30_000);

  step('stop it (with confirmation)');
  await page.click('#action-stop');
  assert.match(await flash(), /stop: web-1 accepted/);
  await waitStatus('passive', 180_000);

  step('take a backup and watch it finish');
  await page.click('#take-backup');
  assert.match(await flash(), /backup .* started/);
  await until('a ready backup', async () =>
    (await page.locator('table.backups .status.ready').count()) > 0, 300_000);
  await waitStatus('passive', 60_000);
  await page.goto(`${base}/ui/backups`);
  await shot('backups');

  step('restore it');
  await page.goto(vmUrl);
  await page.click('button.restore');
  assert.match(await flash(), /restoring .* onto the VM/);
  await until('restore succeeded', async () => /backup restore succeeded/.test(await statusText()), 300_000);

  step('a security group with a new rule, attached to the VM');
  await page.goto(`${base}/ui/security-groups`);
  await page.fill('#create-group input[name=name]', 'web');
  await page.selectOption('#create-group select[name=template_id]', 'ssh');
  await page.click('#create-group button[type=submit]');
  assert.match(await flash(), /security group web created/);
  await page.selectOption('#add-rule select[name=protocol]', 'TCP');
  await page.fill('#add-rule input[name=ports]', '8080');
  await page.selectOption('#add-rule select[name=remote]', 'cidr');
  await page.fill('#add-rule input[name=cidr]', '10.231.0.0/24');
  await page.click('#add-rule-submit');
  assert.match(await flash(), /rule added to web/);
  const rules = await page.locator('#rules').textContent();
  assert.match(rules, /8080/);
  assert.match(rules, /10\.231\.0\.0\/24/);
  await shot('security-group');
  step('a bad rule is refused with the service\'s message');
  await page.selectOption('#add-rule select[name=protocol]', 'ICMP');
  await page.fill('#add-rule input[name=ports]', '22');
  await page.click('#add-rule-submit');
  assert.match(await page.locator('#rule-error').textContent(), /ports apply to TCP and UDP only/);
  assert.equal(await page.inputValue('#add-rule input[name=ports]'), '22', 'the form keeps what was typed');
  assert.doesNotMatch(await page.locator('#rules').textContent(), /ICMP/);
  await page.goto(vmUrl);
  await page.locator('#nics tr', { hasText: 'public' }).locator('button:has-text("Attach")').click();
  assert.match(await flash(), /security group attached/);
  assert.match(await page.locator('#nics').textContent(), /web/);

  step('a volume: created attached to the VM, detached, grown, deleted');
  await page.goto(`${base}/ui/volumes`);
  await page.fill('#create-volume input[name=name]', 'data-1');
  await page.fill('#create-volume input[name=size]', '1');
  await page.selectOption('#create-volume select[name=filesystem_type]', 'xfs');
  await page.selectOption('#create-volume select[name=vm_id]', { index: 1 });
  await page.click('#create-volume button[type=submit]');
  assert.match(await flash(), /volume data-1 is being created/);
  const volRow = page.locator('#volumes tr', { hasText: 'data-1' });
  await until('the volume attached', async () => {
    await page.reload();
    return /attached/.test(await volRow.textContent()) && !/under way/.test(await volRow.textContent());
  }, 120_000);
  assert.match(await volRow.textContent(), /\/dev\/vdc/);
  assert.match(await volRow.textContent(), /web-1/);
  await shot('volumes');
  await volRow.locator('button:has-text("Detach")').click();
  assert.match(await flash(), /volume data-1 is being detached/);
  await until('the volume detached', async () => {
    await page.reload();
    return /available/.test(await volRow.textContent()) && !/under way/.test(await volRow.textContent());
  }, 120_000);
  await volRow.locator('input[name=new_size]').fill('3');
  await volRow.locator('button:has-text("Grow")').click();
  assert.match(await flash(), /growing to 3 GB/);
  await until('the volume grown', async () => {
    await page.reload();
    return /3 GB/.test(await volRow.textContent()) && !/under way/.test(await volRow.textContent());
  }, 60_000);
  await volRow.locator('button:has-text("Delete")').click();
  assert.match(await flash(), /volume data-1 is being deleted/);
  await until('the volume gone', async () => {
    await page.reload();
    return (await page.locator('#volumes tr', { hasText: 'data-1' }).count()) === 0;
  }, 60_000);

  step('snapshots on the VM page: taken, renamed, restored, deleted');
  await page.goto(vmUrl);
  await page.fill('#snapshots .head input[name=name]', 'before-upgrade');
  await page.click('#take-snapshot');
  assert.match(await flash(), /snapshot before-upgrade taken/);
  const snapRows = page.locator('#snapshot-table tr[data-snapshot]');
  assert.equal(await snapRows.count(), 1);
  const first = snapRows.first();
  assert.match(await first.textContent(), /offline/, 'a stopped VM is snapshotted offline');
  await first.locator('input[name=name]').fill('golden');
  await first.locator('button:has-text("Rename")').click();
  assert.match(await flash(), /snapshot renamed to golden/);
  await snapRows.first().locator('button:has-text("Restore")').click();
  assert.match(await flash(), /restored to snapshot golden/);
  assert.match(await snapRows.first().textContent(), /active/);
  assert.equal(await snapRows.first().locator('button:has-text("Delete")').count(), 0,
    'the snapshot the disks are at is not deleted');
  await page.fill('#snapshots .head input[name=name]', 'after');
  await page.click('#take-snapshot');
  assert.match(await flash(), /snapshot after taken/);
  await shot('snapshots');
  const golden = page.locator('#snapshot-table tr[data-snapshot]', { hasText: 'golden' });
  await golden.locator('button:has-text("Delete")').click();
  assert.match(await flash(), /snapshot golden deleted/);
  assert.equal(await page.locator('#snapshot-table tr[data-snapshot]').count(), 1);

  step('create an API key (secret shown once), use it, revoke it');
  await page.goto(`${base}/ui/api-keys`);
  await page.fill('#create-api-key input[name=name]', 'ci-key');
  await page.click('#create-api-key button[type=submit]');
  const secret = (await page.locator('#new-secret').textContent()).trim();
  assert.match(secret, /^raff_[0-9a-f]{64}$/);
  await shot('api-keys');
  const withKey = (k) => page.evaluate(async (key) =>
    (await fetch('/api/v1/projects', { headers: { 'X-API-Key': key } })).status, k);
  assert.equal(await withKey(secret), 200);
  const side = await page.evaluate(async (key) => (await fetch('/api/v1/projects', {
    method: 'POST',
    headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'side-project' }),
  })).status, secret);
  assert.equal(side, 201, 'a second project for the invitation step');
  await page.reload();
  assert.equal(await page.locator('#new-secret').count(), 0, 'the secret is shown once');
  const keyRow = page.locator('tr[data-key="ci-key"]');
  await keyRow.locator('select[name=role_id]').selectOption({ label: 'Viewer' });
  await keyRow.locator('.grant-form button').click();
  assert.match(await flash(), /the key now holds Viewer in this project/);
  assert.match(await page.locator('tr[data-key="ci-key"] td.grants').textContent(), /: Viewer/);
  await page.click('tr[data-key="ci-key"] button.revoke');
  assert.match(await flash(), /API key ci-key revoked/);
  assert.equal(await withKey(secret), 401);

  step('rename the VM from its lifecycle panel');
  await page.goto(vmUrl);
  await page.click('#lifecycle summary');
  await page.fill('#lifecycle input[name=name]', 'web-1b');
  await page.click('#lifecycle button:has-text("Rename")');
  assert.match(await flash(), /renamed to web-1b/);
  assert.equal((await page.locator('#vm-name').textContent()).trim(), 'web-1b');

  step('a forged form post without the CSRF token is refused, and changes nothing');
  const forged = await page.evaluate(async (k) => {
    const r = await fetch('/ui/ssh-keys', {
      method: 'POST',
      body: new URLSearchParams({ name: 'forged', public_key: k }),
    });
    return { status: r.status, text: await r.text() };
  }, sshKey.replace('user@host', 'forged@host'));
  assert.equal(forged.status, 403);
  assert.match(forged.text, /did not come from this dashboard/);
  await page.goto(`${base}/ui/ssh-keys`);
  assert.doesNotMatch(await page.locator('#ssh-keys').textContent(), /forged/);

  step('phone width: the VM list fits the screen (wide tables scroll inside)');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/ui/vms`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page is ${overflow}px wider than the screen`);
  await shot('vms-phone');
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${base}/ui/vms`);
  await shot('vms');

  step('invite someone to this project alone; they accept, see only it, and no owner page');
  await page.goto(`${base}/ui/roles`);
  assert.match(await page.locator('#permission-matrix').textContent(), /account\.members\.invite/);
  await shot('roles');
  await page.goto(`${base}/ui/members`);
  assert.match(await page.locator('#members').textContent(), /owner|Owner/);
  await page.fill('#invite input[name=email]', 'ann@example.org');
  await page.selectOption('#invite select[name=to]', 'project');
  await page.selectOption('#invite select[name=role_id]', { label: 'Operator (project)' });
  await page.click('#invite button[type=submit]');
  const link = (await page.locator('#new-secret').textContent()).trim();
  assert.match(link, /\/ui\/invite\/inv_[0-9a-f]{64}$/);
  assert.match(await page.locator('#project-members').textContent(), /ann@example\.org\s*Operator\s*pending/);
  await shot('members');
  const guest = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const ann = await guest.newPage();
  await ann.goto(link);
  assert.match(await ann.locator('#accept-form').textContent(), /Operator/);
  await ann.fill('#accept-form input[name=password]', 'anns-password-1');
  await ann.fill('#accept-form input[name=password2]', 'anns-password-1');
  await ann.click('#accept-form button[type=submit]');
  await ann.waitForURL(`${base}/ui/`);
  const theirs = await ann.locator('#project-select option').allTextContents();
  assert.equal(theirs.length, 1, `ann sees one project: ${theirs}`);
  assert.doesNotMatch(theirs.join(','), /side-project/);
  const mine = await page.locator('#project-select option').allTextContents();
  assert.ok(mine.some((n) => /side-project/.test(n)), 'the owner sees both');
  assert.equal(await ann.locator('nav a[href="/ui/roles"]').count(), 0, 'no owner page offered');
  for (const owner of ['/ui/roles', '/ui/members', '/ui/api-keys']) {
    const r = await ann.goto(`${base}${owner}`);
    assert.equal(r.status(), 403, owner);
  }
  await ann.goto(`${base}/ui/vms`);
  assert.match(await ann.locator('#vm-list').textContent(), /web-1/);
  await guest.close();
  await page.reload();
  assert.match(await page.locator('#project-members').textContent(), /ann@example\.org\s*Operator\s*active/);

  step('sign out');
  await page.click('#logout');
  await page.waitForURL(`${base}/ui/login`);
  await page.goto(`${base}/ui/vms`);
  assert.match(page.url(), /\/ui\/login/);

  step('without JavaScript the read-only pages still show everything');
  const plain = await browser.newContext({ javaScriptEnabled: false });
  const p2 = await plain.newPage();
  await p2.goto(`${base}/ui/login`);
  await p2.fill('input[name=user]', user);
  await p2.fill('input[name=password]', password);
  await p2.click('button[type=submit]');
  await p2.goto(`${base}/ui/vms`);
  assert.match(await p2.locator('#vm-list').textContent(), /web-1/);
  await p2.goto(vmUrl);
  assert.match(await p2.locator('#vm-status-badge').textContent(), /passive|active/);
  await plain.close();

  assert.deepEqual(errors, [], 'no script errors on any page');
  step('all steps passed');
} catch (e) {
  console.error(`FAILED at ${page.url()}: ${e.stack || e}`);
  try { await shot('failure'); } catch (_) { /* best effort */ }
  await browser.close();
  process.exit(1);
}
await browser.close();
