/**
 * Keystore adapter: the supplier's key from an encrypted JSON keystore (Web3 Secret Storage, as
 * written by geth / ethers). The password comes from a file or an environment variable; it is
 * never logged and never placed in an error message (errors drop ethers' own error as cause, since
 * nothing guarantees what it carries).
 */
import { readFile } from 'node:fs/promises';
import { Wallet, type HDNodeWallet, type Provider } from 'ethers';
import { KeystoreDecryptError, KeystoreNotFoundError, KeystorePasswordMissingError } from './errors.js';

export interface KeystoreOptions {
  /** Path of the encrypted JSON keystore. */
  path: string;
  /** File holding the password (one trailing newline is stripped). Takes precedence over passwordEnv. @default none */
  passwordFile?: string;
  /** Name of the environment variable holding the password. @default 'TESSERA_KEYSTORE_PASSWORD' */
  passwordEnv?: string;
  /** Environment to read passwordEnv from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

async function readPassword(opts: KeystoreOptions): Promise<string> {
  if (opts.passwordFile !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.passwordFile, 'utf8');
    } catch {
      throw new KeystorePasswordMissingError(`password file ${opts.passwordFile} not readable`);
    }
    return text.replace(/\r?\n$/, '');
  }
  const name = opts.passwordEnv ?? 'TESSERA_KEYSTORE_PASSWORD';
  const value = (opts.env ?? process.env)[name];
  if (value === undefined) throw new KeystorePasswordMissingError(`environment variable ${name} is not set`);
  return value;
}

/** Decrypts the keystore; connects the wallet to `provider` when given. */
export async function loadSupplierWallet(opts: KeystoreOptions, provider?: Provider): Promise<Wallet | HDNodeWallet> {
  let json: string;
  try {
    json = await readFile(opts.path, 'utf8');
  } catch (err) {
    throw new KeystoreNotFoundError(opts.path, { cause: err });
  }
  const password = await readPassword(opts);
  let wallet: Wallet | HDNodeWallet;
  try {
    wallet = await Wallet.fromEncryptedJson(json, password);
  } catch (err) {
    const msg = err instanceof Error ? err.message : '';
    const reason = /incorrect password/i.test(msg) ? 'wrong password' : 'not a valid encrypted JSON keystore';
    throw new KeystoreDecryptError(opts.path, reason);
  }
  return provider ? wallet.connect(provider) : wallet;
}
