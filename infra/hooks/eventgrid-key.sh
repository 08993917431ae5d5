#!/bin/sh
# Before provisioning with azd: make sure the azd environment holds SMS_EVENTGRID_KEY, the key Event Grid gives the
# gateway's ACS events route; the first time, generate one.
#
# main.parameters.json passes it to the template's @secure() eventGridKey, which stores it in Key Vault as
# sms-eventgrid-key and points the SMS_EVENTGRID_KEY app setting at it; the postdeploy hook
# (subscribe-acs-events.sh) puts the same key in the Event Grid subscription's URL. A template cannot make a random
# value that stays (newGuid() is only a parameter default, new at every deployment), so it is made here, once, and
# kept where azd keeps the environment's other settings and secrets (.azure/<environment>/.env, git-ignored). azd
# reads the parameters after this hook has run (Azure/azure-dev#1714, #6064); infra/deploy.sh does the same for
# itself without azd.
#
# The key: 32 random bytes from /dev/urandom as 64 hex digits (the app wants at least 32 letters, digits, - or _).
# `azd env set` takes it as an argument (it reads no value from a file or stdin), so it shows in this machine's
# process list for the instant the command runs, as any secret set with azd does.
# To rotate it: azd env set SMS_EVENTGRID_KEY <new key>, then azd up (docs/providers.md, "Wiring delivery
# receipts"). Reads SMS_EVENTGRID_KEY from the environment (azd passes its environment to hooks). Needs azd.
# infra/hooks/eventgrid-key.ps1 is its twin for Windows.
set -eu

fail() {
  echo "eventgrid-key: $*" >&2
  exit 1
}

key=${SMS_EVENTGRID_KEY:-}
if [ -n "$key" ]; then
  case $key in
    *[!A-Za-z0-9_-]*) fail "SMS_EVENTGRID_KEY must be letters, digits, - or _ only: azd env set SMS_EVENTGRID_KEY <key>" ;;
  esac
  [ "${#key}" -ge 32 ] || fail "SMS_EVENTGRID_KEY must be at least 32 characters: azd env set SMS_EVENTGRID_KEY <key>"
  echo "Event Grid key: the azd environment's SMS_EVENTGRID_KEY."
  exit 0
fi
command -v azd >/dev/null 2>&1 || fail "azd is not on PATH (this hook runs under azd)"
key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
[ "${#key}" -eq 64 ] || fail "could not read 32 random bytes from /dev/urandom"
azd env set SMS_EVENTGRID_KEY "$key" || fail "azd env set failed (the error is above)"
echo "Event Grid key: generated and kept in the azd environment as SMS_EVENTGRID_KEY; the template stores it in Key Vault."
