import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encryptKeystoreJson, Wallet } from 'ethers';
import { loadSupplierWallet } from './keystore.js';
import { KeystoreDecryptError, KeystoreNotFoundError, KeystorePasswordMissingError } from './errors.js';

const PASSWORD = 'correct-horse-battery-staple-7f3a';
const key = Wallet.createRandom();
let dir: string;
let path: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bridge-keystore-'));
  path = join(dir, 'key.json');
  // small scrypt N keeps the test fast; the format is the standard one
  await writeFile(path, await encryptKeystoreJson({ address: key.address, privateKey: key.privateKey }, PASSWORD, { scrypt: { N: 1024 } }));
  await writeFile(join(dir, 'pw'), `${PASSWORD}\n`);
  await writeFile(join(dir, 'wrong'), 'not-the-password\n');
});

describe('loadSupplierWallet', () => {
  test('decrypts with the password from a file (trailing newline stripped) or an env var', async () => {
    expect((await loadSupplierWallet({ path, passwordFile: join(dir, 'pw') })).address).toBe(key.address);
    expect((await loadSupplierWallet({ path, passwordEnv: 'PW', env: { PW: PASSWORD } })).address).toBe(key.address);
    expect((await loadSupplierWallet({ path, env: { TESSERA_KEYSTORE_PASSWORD: PASSWORD } })).address).toBe(key.address);
  });

  test('a wrong password is KeystoreDecryptError whose message, stack and fields never hold any password', async () => {
    for (const [opts, secret] of [[{ path, passwordFile: join(dir, 'wrong') }, 'not-the-password'], [{ path, env: { TESSERA_KEYSTORE_PASSWORD: `${PASSWORD}x` } }, `${PASSWORD}x`]] as const) {
      const err = await loadSupplierWallet(opts).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(KeystoreDecryptError);
      expect((err as Error).message).toMatch(/wrong password/);
      const everything = `${String(err)} ${(err as Error).stack} ${JSON.stringify(err)} ${String((err as Error).cause)}`;
      expect(everything).not.toContain(secret);
      expect(everything).not.toContain(PASSWORD);
    }
  });

  test('missing keystore, missing password file, unset env var, and a non-keystore file each fail clearly', async () => {
    await expect(loadSupplierWallet({ path: join(dir, 'nope.json'), env: { TESSERA_KEYSTORE_PASSWORD: PASSWORD } })).rejects.toBeInstanceOf(KeystoreNotFoundError);
    await expect(loadSupplierWallet({ path, passwordFile: join(dir, 'no-pw') })).rejects.toBeInstanceOf(KeystorePasswordMissingError);
    await expect(loadSupplierWallet({ path, passwordEnv: 'UNSET_VAR', env: {} })).rejects.toThrow(/UNSET_VAR is not set/);
    await writeFile(join(dir, 'junk.json'), '{"hello":1}');
    const err = await loadSupplierWallet({ path: join(dir, 'junk.json'), env: { TESSERA_KEYSTORE_PASSWORD: PASSWORD } }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(KeystoreDecryptError);
    expect((err as Error).message).toMatch(/not a valid encrypted JSON keystore/);
  });
});
