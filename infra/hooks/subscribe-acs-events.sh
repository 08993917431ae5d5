#!/bin/sh
# After the code is deployed: subscribe the gateway's ACS events route to the Communication Services system topic.
#
# Event Grid validates a WebHook endpoint when a subscription is created or its endpoint changes: it posts a
# SubscriptionValidationEvent and waits for the route's answer ("Receive events from Azure Event Grid to an HTTP
# endpoint", Endpoint validation). On a first deployment the template runs before the code exists, so main.bicep
# creates the system topic only, and this deploys infra/bicep/acs-events-subscription.bicep once the code is
# published. A freshly published app can take a while to answer (cold start, the remote build settling), so a
# failed validation is retried a few times before giving up. Redeploying the subscription updates it in place.
#
# The key goes to the deployment in a private temporary file, never on a command line.
#
# Run by azd as the postdeploy hook (azure.yaml) and by infra/deploy.sh after publishing. Reads, from the
# environment (azd keeps the template's outputs there; deploy.sh passes them):
#   ACS_EVENTS_SYSTEM_TOPIC            the system topic; empty when the template created no ACS resource: nothing to do
#   AZURE_RESOURCE_GROUP               the resource group
#   SMS_PUBLIC_BASE_URL                the gateway's public base URL
#   STORAGE_ACCOUNT_NAME, ACS_EVENTS_DEAD_LETTER_CONTAINER  where undeliverable events go
#   SMS_EVENTGRID_KEY_IN_VAULT         true when the deployment referenced the key (false: the app has no key yet)
#   SMS_EVENTGRID_KEY                  the key (azd's environment, or deploy.sh); unset: read from the vault
#   KEY_VAULT_NAME                     the vault holding the secret sms-eventgrid-key
#   SMS_EVENTS_SUBSCRIBE_ATTEMPTS      how many times to try (default 5)
#   SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS  how long to wait between tries (default 30)
# Needs the Azure CLI, signed in (az login). infra/hooks/subscribe-acs-events.ps1 is its twin for Windows.
set -eu

SECRET_NAME=sms-eventgrid-key
DEPLOYMENT_NAME=acs-events-subscription

fail() {
  echo "subscribe-acs-events: $*" >&2
  exit 1
}

whole_number() {
  case $2 in
    '' | *[!0-9]*) fail "$1 must be a whole number, not '$2'" ;;
  esac
}

topic=${ACS_EVENTS_SYSTEM_TOPIC:-}
if [ -z "$topic" ]; then
  echo "ACS events: no Communication Services resource in this deployment, so no subscription to create."
  exit 0
fi
group=${AZURE_RESOURCE_GROUP:-}
base_url=${SMS_PUBLIC_BASE_URL:-}
account=${STORAGE_ACCOUNT_NAME:-}
container=${ACS_EVENTS_DEAD_LETTER_CONTAINER:-}
attempts=${SMS_EVENTS_SUBSCRIBE_ATTEMPTS:-5}
wait_seconds=${SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS:-30}
[ -n "$group" ] || fail "AZURE_RESOURCE_GROUP is not set"
[ -n "$account" ] && [ -n "$container" ] ||
  fail "STORAGE_ACCOUNT_NAME and ACS_EVENTS_DEAD_LETTER_CONTAINER must be set (the deployment's outputs)"
whole_number SMS_EVENTS_SUBSCRIBE_ATTEMPTS "$attempts"
whole_number SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS "$wait_seconds"
[ "$attempts" -ge 1 ] || fail "SMS_EVENTS_SUBSCRIBE_ATTEMPTS must be at least 1"
# The values go into a JSON file as they are: only what cannot need escaping is accepted.
case $base_url in
  https://*/ | *[!A-Za-z0-9.:/_-]*) fail "SMS_PUBLIC_BASE_URL must be https://<host> without a trailing slash, not '$base_url'" ;;
  https://?*) ;;
  *) fail "SMS_PUBLIC_BASE_URL must be https://<host> without a trailing slash, not '$base_url'" ;;
esac
case $topic$account$container in
  *[!A-Za-z0-9_-]*) fail "unexpected characters in the topic, account or container name" ;;
esac
case ${SMS_EVENTGRID_KEY_IN_VAULT:-} in
  false | False) fail "the deployment set no Event Grid key on the app, so Event Grid's validation would be refused.
Provision again with the key (azd: azd env get-value SMS_EVENTGRID_KEY shows it; azd releases before
Azure/azure-dev#6064 read the parameters before the preprovision hook had set it), then run this again." ;;
esac
command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not installed"

key=${SMS_EVENTGRID_KEY:-}
if [ -z "$key" ]; then
  vault=${KEY_VAULT_NAME:-}
  [ -n "$vault" ] || fail "neither SMS_EVENTGRID_KEY nor KEY_VAULT_NAME is set"
  key=$(az keyvault secret show --vault-name "$vault" --name "$SECRET_NAME" --query value -o tsv) ||
    fail "could not read $SECRET_NAME from $vault (the error is above): you need Key Vault Secrets User or Officer on it"
fi
case $key in
  *[!A-Za-z0-9_-]*) fail "the Event Grid key must be letters, digits, - or _ only" ;;
esac
[ "${#key}" -ge 32 ] || fail "the Event Grid key must be at least 32 characters"

template="$(cd "$(dirname "$0")/.." && pwd)/bicep/acs-events-subscription.bicep"
[ -f "$template" ] || fail "missing $template"
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
chmod 700 "$workdir"
parameters="$workdir/parameters.json"
(
  umask 077
  cat >"$parameters" <<EOF
{
  "\$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "systemTopicName": {"value": "$topic"},
    "publicBaseUrl": {"value": "$base_url"},
    "eventGridKey": {"value": "$key"},
    "storageAccountName": {"value": "$account"},
    "deadLetterContainerName": {"value": "$container"}
  }
}
EOF
)

echo "==> ACS events: subscribing $base_url to system topic $topic (Event Grid validates the endpoint now)"
attempt=1
while :; do
  if az deployment group create --resource-group "$group" --name "$DEPLOYMENT_NAME" \
    --template-file "$template" --parameters "@$parameters" -o none; then
    break
  fi
  if [ "$attempt" -ge "$attempts" ]; then
    fail "Event Grid could not create the subscription after $attempts attempts (the last error is above).
A validation failure means the app did not answer the handshake: check that it runs (GET $base_url/api/health) and
that its SMS_EVENTGRID_KEY setting resolves (the app's Environment variables blade), then run this again:
ACS_EVENTS_SYSTEM_TOPIC=$topic AZURE_RESOURCE_GROUP=$group SMS_PUBLIC_BASE_URL=$base_url STORAGE_ACCOUNT_NAME=$account \\
  ACS_EVENTS_DEAD_LETTER_CONTAINER=$container KEY_VAULT_NAME=<vault> sh infra/hooks/subscribe-acs-events.sh"
  fi
  echo "    not yet (attempt $attempt of $attempts); waiting $wait_seconds s for the app to answer" >&2
  attempt=$((attempt + 1))
  sleep "$wait_seconds"
done
echo "    subscribed: SMS delivery reports and inbound SMS go to the gateway (docs/providers.md, \"Wiring delivery receipts\")"
