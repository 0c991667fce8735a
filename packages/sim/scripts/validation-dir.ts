/** The validation folder of the scripts: `--validation DIR`, else `$KVMGR_VALIDATION_DIR`. */
import { existsSync } from 'node:fs';

export function validationDir(args: readonly string[]): string {
  const i = args.indexOf('--validation');
  const dir = i >= 0 ? args[i + 1] : process.env.KVMGR_VALIDATION_DIR;
  if (dir === undefined || dir === '') {
    process.stderr.write('usage: pass --validation DIR (a folder in the shared/validation layout) or set KVMGR_VALIDATION_DIR\n');
    process.exit(2);
  }
  if (!existsSync(dir)) {
    process.stderr.write(`validation folder ${dir}: no such directory\n`);
    process.exit(2);
  }
  return dir;
}
