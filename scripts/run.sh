#!/usr/bin/env bash
# Run the gateway locally: Azurite (data in .azurite/) plus the functions on http://127.0.0.1:7071.
# Prints a development API key and a curl command that sends an SMS through the outbox provider.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

# local.settings.json is yours: create it from the example, and add settings the example gained since.
.venv/bin/python - <<'PY'
import json, pathlib
example = json.loads(pathlib.Path("local.settings.json.example").read_text())
path = pathlib.Path("local.settings.json")
mine = json.loads(path.read_text()) if path.exists() else example
added = [name for name in example["Values"] if name not in mine.setdefault("Values", {})]
for name in added:
    mine["Values"][name] = example["Values"][name]
if added or not path.exists():
    path.write_text(json.dumps(mine, indent=2) + "\n")
    print("local.settings.json: added", ", ".join(added) if added else "(created from the example)")
PY
mkdir -p .azurite

azurite_pid=""
cleanup() { [ -n "$azurite_pid" ] && kill "$azurite_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if (exec 3<>/dev/tcp/127.0.0.1/10002) 2>/dev/null; then
  echo "Azurite (or another storage emulator) is already listening on 10000-10002; using it."
else
  node_modules/.bin/azurite --silent --skipApiVersionCheck --location .azurite \
    --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 &
  azurite_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/10002) 2>/dev/null && break
    sleep 0.1
  done
fi

key_file=.azurite/dev-api-key
licensee=11111111111111111111111111111111
if [ ! -s "$key_file" ]; then
  .venv/bin/python -m gateway keys create --licensee "$licensee" --name "local development" | tail -n 1 > "$key_file"
fi
key=$(cat "$key_file")
port=${PORT:-7071}
# Providers call back on SMS_PUBLIC_BASE_URL (the Twilio fake's status callbacks): unless the environment or
# local.settings.json names one (a tunnel, say), it is this host's own URL.
if [ -z "${SMS_PUBLIC_BASE_URL:-}" ]; then
  configured=$(.venv/bin/python -c 'import json; print(json.load(open("local.settings.json"))["Values"].get("SMS_PUBLIC_BASE_URL") or "")')
  export SMS_PUBLIC_BASE_URL=${configured:-http://127.0.0.1:$port}
fi
if [ "${SMS_PROVIDER:-outbox}" = outbox ]; then
  delivered_by="delivered to the outbox table, nothing leaves this machine"
  look_up="See what would have been sent:  .venv/bin/python -m gateway outbox"
else
  delivered_by="delivered through the $SMS_PROVIDER provider set in the environment"
  look_up="See each recipient's provider id:  curl -s -H \"Authorization: Bearer $key\" http://127.0.0.1:$port/api/sms/<CommId>"
fi

cat <<MSG

Development API key (licensee $licensee): $key

Send an SMS ($delivered_by):

  curl -s -X POST http://127.0.0.1:$port/api/sendmessage/immediate \\
    -H "Authorization: Bearer $key" -H "Content-Type: application/json" \\
    -d '{"SMSModel":{"To":[{"Name":"Alex","PhoneNumber":"+447911123456"}],"MessageBody":"Hello from the gateway"}}'

$look_up

Or look in the browser: http://127.0.0.1:$port/console (paste the key above and press Enter).

MSG
.venv/bin/python -m devhost --port "$port"
