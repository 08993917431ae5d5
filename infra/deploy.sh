#!/usr/bin/env bash
# Deploy the SMS gateway with the Azure CLI alone: resource group, infrastructure (infra/bicep/main.bicep), code.
#
#   infra/deploy.sh [--provider twilio|acs|outbox] <environment> [location]
#
# The SMS provider is a choice made at every run: --provider, else SMS_PROVIDER, else the script asks on a terminal;
# without a terminal it stops. outbox records messages and sends nothing: it runs in Azure only when chosen by name.
# Needs: az (logged in with `az login`, allowed to create resource groups and role assignments, e.g. Owner or
# Contributor + User Access Administrator on the subscription) and zip or python3 to build the package.
# Other settings come from environment variables, all optional (docs/deploy.md lists them):
#   AZURE_RESOURCE_GROUP          resource group (default rg-sms-gateway-<environment>)
#   SMS_FUNCTION_APP_NAME         function app name (template default: production-eros-gateway-api-sms-wa)
#   SMS_CUSTOM_DOMAIN             custom host name, served by Front Door (the DNS records to create are printed)
#   SMS_PROVIDER                  twilio | acs | outbox, when --provider is not given
#   SMS_DEFAULT_SENDER, SMS_DEFAULT_REGION, SMS_JSON_CASING,
#   SMS_QUEUE_NAME, SMS_TABLE_PREFIX
#   TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN*, TWILIO_API_KEY_SID, TWILIO_API_KEY_SECRET*,
#   TWILIO_MESSAGING_SERVICE_SID, TWILIO_STATUS_CALLBACK_URL
#   ACS_ENDPOINT, ACS_CONNECTION_STRING*, SMS_CREATE_ACS (true to create a Communication Services resource)
#   SMS_EXISTING_SECRETS          comma-separated names of secrets already in the vault that the app settings should
#                                 reference (twilio-auth-token, twilio-api-key-secret, acs-connection-string). Unset:
#                                 on a redeployment, the provider secrets found in the vault; set it (even empty) to
#                                 choose yourself.
#   SMS_EVENTGRID_KEY*            the key Event Grid gives the ACS events route (at least 32 letters, digits, - or _),
#                                 to rotate it. Unset: the one in the vault of the earlier deployment, else a new one.
#   SMS_GRANT_DEPLOYER            false to skip granting you Table Data Contributor and Key Vault Secrets Officer
#   SMS_VAULT_REFERENCE_WAIT_SECONDS  how long to wait for the Key Vault references to resolve (default 900)
# (* stored in Key Vault; passed to the deployment in a private temporary file, never on a command line.)
#
# The checks azd runs as hooks run here too, from infra/hooks/: before anything is created, that the app name is
# free or this environment's own (else it prints the cut-over steps and stops); after the infrastructure, that the
# app's Key Vault references resolve, then it restarts the app; after the code, the ACS events subscription (when
# the template created a Communication Services resource), which Event Grid validates against the running code.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="$ROOT/infra/bicep/main.bicep"
HOOKS="$ROOT/infra/hooks"
# What the deployment package holds, and nothing else: the development tooling (devhost/, fakes/, tests/, bench/,
# scripts/) stays out. .funcignore keeps azd's package to the same (tests/test_infra.py checks both).
PACKAGE_FILES=(function_app.py host.json requirements.txt gateway)
# The providers the template allows (gateway/providers PROVIDERS; tests/test_infra.py checks they agree).
PROVIDERS=(twilio acs outbox)

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: infra/deploy.sh [--provider twilio|acs|outbox] <environment> [location]" >&2
  echo "  --provider   the SMS provider (default: \$SMS_PROVIDER; asked on a terminal); outbox sends nothing" >&2
  echo "  environment  short name such as prod or test; names the resource group and seeds resource names" >&2
  echo "  location     Azure region offering Flex Consumption (default: \$AZURE_LOCATION or eastus2)" >&2
  exit 2
}

# The provider to deploy: the one given, else asked for on a terminal; never a silent default.
choose_provider() {
  local choice=$1 known
  if [[ -z $choice ]]; then
    [[ -t 0 ]] || die "no SMS provider chosen: pass --provider twilio|acs|outbox or set SMS_PROVIDER (outbox sends nothing)"
    read -r -p "SMS provider (twilio, acs, or outbox, which sends nothing): " choice || true
  fi
  choice=$(tr '[:upper:]' '[:lower:]' <<<"$choice")
  for known in "${PROVIDERS[@]}"; do
    if [[ $choice == "$known" ]]; then
      echo "$choice"
      return 0
    fi
  done
  die "unknown SMS provider '$choice': choose one of ${PROVIDERS[*]}"
}

# Escape a value for a JSON string literal.
json_string() {
  local value=$1
  value=${value//\\/\\\\}
  value=${value//\"/\\\"}
  value=${value//$'\n'/\\n}
  value=${value//$'\r'/\\r}
  value=${value//$'\t'/\\t}
  printf '"%s"' "$value"
}

PARAMS=()

# Add a parameter whose value is a JSON literal.
add_param_json() {
  PARAMS+=("$(printf '%s: {"value": %s}' "$(json_string "$1")" "$2")")
}

# Add a string parameter from an environment variable, when the variable is set and not empty.
add_param_from_env() {
  local name=$1 variable=$2
  if [[ -n "${!variable:-}" ]]; then
    add_param_json "$name" "$(json_string "${!variable}")"
  fi
}

# Add a bool parameter from an environment variable holding true or false.
add_bool_param_from_env() {
  local name=$1 variable=$2 value
  if [[ -n "${!variable:-}" ]]; then
    value=$(tr '[:upper:]' '[:lower:]' <<<"${!variable}")
    [[ $value == true || $value == false ]] || die "$variable must be true or false, not '${!variable}'"
    add_param_json "$name" "$value"
  fi
}

# The object id and kind of the signed-in principal, or nothing when the directory cannot be read.
deployer_principal() {
  local user_type user_name id
  user_type=$(az account show --query user.type -o tsv)
  user_name=$(az account show --query user.name -o tsv)
  if [[ $user_type == user ]]; then
    id=$(az ad signed-in-user show --query id -o tsv 2>/dev/null) || return 0
    [[ -n $id ]] && echo "$id User"
  else
    id=$(az ad sp show --id "$user_name" --query id -o tsv 2>/dev/null) || return 0
    [[ -n $id ]] && echo "$id ServicePrincipal"
  fi
  return 0
}

build_package() {
  local package=$1 file
  for file in "${PACKAGE_FILES[@]}"; do
    [[ -e "$ROOT/$file" ]] || die "$file is missing from $ROOT: deploy from a checkout that contains the app"
  done
  rm -f "$package"
  if command -v zip >/dev/null 2>&1; then
    (cd "$ROOT" && zip -q -r "$package" "${PACKAGE_FILES[@]}" -x '*__pycache__*' '*.pyc')
  elif command -v python3 >/dev/null 2>&1; then
    (cd "$ROOT" && python3 - "$package" "${PACKAGE_FILES[@]}" <<'PY'
import sys
import zipfile
from pathlib import Path

target, *names = sys.argv[1:]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
    for name in names:
        path = Path(name)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" not in file.parts and file.suffix != ".pyc":
                archive.write(file, file.as_posix())
PY
    )
  else
    die "need zip or python3 to build the deployment package"
  fi
}

# Publish the package; retried because a role assignment made moments ago can take minutes to apply.
publish() {
  local group=$1 app=$2 package=$3 attempt
  for attempt in 1 2 3 4 5; do
    if az functionapp deployment source config-zip --resource-group "$group" --name "$app" \
      --src "$package" --build-remote true --timeout 900 -o none; then
      return 0
    fi
    echo "Publishing failed (attempt $attempt of 5); waiting 60 s for role assignments to apply..." >&2
    sleep 60
  done
  die "publishing $package to $app failed five times; the last error is above"
}

# The names of the secrets in the vault of an earlier deployment, one a line (nothing on a first deployment).
secrets_in_vault() {
  local vault names
  vault=$(az deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
    --query "properties.outputs.KEY_VAULT_NAME.value" -o tsv 2>/dev/null) || return 0
  [[ -n $vault ]] || return 0
  if ! names=$(az keyvault secret list --vault-name "$vault" --query "[].name" -o tsv 2>/dev/null); then
    echo "warning: cannot list the secrets in $vault: set SMS_EXISTING_SECRETS to keep referencing the provider" \
      "secrets; the Event Grid key will be a new one" >&2
    return 0
  fi
  echo "$names"
}

# The provider secrets among the vault's secret names, comma-separated.
provider_secrets() {
  local name found=()
  for name in $1; do
    case $name in
      twilio-auth-token | twilio-api-key-secret | acs-connection-string) found+=("$name") ;;
    esac
  done
  (IFS=,; echo "${found[*]}")
}

# A new Event Grid key: 32 random bytes as 64 hex digits, as infra/hooks/eventgrid-key.sh makes it for azd.
new_eventgrid_key() {
  local key
  key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  [[ ${#key} -eq 64 ]] || die "could not read 32 random bytes from /dev/urandom"
  echo "$key"
}

output() {
  az deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
    --query "properties.outputs.$1.value" -o tsv
}

main() {
  local provider_flag=""
  while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
      --provider)
        [[ $# -ge 2 ]] || usage
        provider_flag=$2
        shift 2
        ;;
      --provider=*)
        provider_flag=${1#*=}
        shift
        ;;
      *) usage ;;
    esac
  done
  [[ $# -ge 1 && $# -le 2 ]] || usage
  local env_name=$1
  local location=${2:-${AZURE_LOCATION:-eastus2}}
  [[ $env_name =~ ^[A-Za-z0-9][A-Za-z0-9-]{0,62}$ ]] || die "environment must be letters, digits and hyphens"
  local sms_provider
  sms_provider=$(choose_provider "${provider_flag:-${SMS_PROVIDER:-}}")

  command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
  az account show -o none 2>/dev/null || die "not logged in: run az login (and az account set --subscription ...)"
  [[ -f "$TEMPLATE" ]] || die "missing $TEMPLATE"

  RESOURCE_GROUP=${AZURE_RESOURCE_GROUP:-rg-sms-gateway-$env_name}
  DEPLOYMENT_NAME="sms-gateway-$env_name"
  local subscription
  subscription=$(az account show --query id -o tsv)

  echo "==> App name"
  AZURE_ENV_NAME=$env_name AZURE_RESOURCE_GROUP=$RESOURCE_GROUP AZURE_SUBSCRIPTION_ID=$subscription \
    SMS_DEPLOY_COMMAND="infra/deploy.sh --provider $sms_provider $env_name $location" sh "$HOOKS/check-app-name.sh"

  echo "==> SMS provider: $sms_provider"
  echo "==> Resource group $RESOURCE_GROUP in $location"
  az group create --name "$RESOURCE_GROUP" --location "$location" --tags "azd-env-name=$env_name" -o none

  add_param_json environmentName "$(json_string "$env_name")"
  add_param_json location "$(json_string "$location")"
  add_param_from_env functionAppName SMS_FUNCTION_APP_NAME
  add_param_from_env customDomain SMS_CUSTOM_DOMAIN
  add_param_json smsProvider "$(json_string "$sms_provider")"
  add_param_from_env smsQueueName SMS_QUEUE_NAME
  add_param_from_env smsTablePrefix SMS_TABLE_PREFIX
  add_param_from_env smsDefaultSender SMS_DEFAULT_SENDER
  add_param_from_env smsDefaultRegion SMS_DEFAULT_REGION
  add_param_from_env smsJsonCasing SMS_JSON_CASING
  add_param_from_env twilioAccountSid TWILIO_ACCOUNT_SID
  add_param_from_env twilioAuthToken TWILIO_AUTH_TOKEN
  add_param_from_env twilioApiKeySid TWILIO_API_KEY_SID
  add_param_from_env twilioApiKeySecret TWILIO_API_KEY_SECRET
  add_param_from_env twilioMessagingServiceSid TWILIO_MESSAGING_SERVICE_SID
  add_param_from_env twilioStatusCallbackUrl TWILIO_STATUS_CALLBACK_URL
  add_param_from_env acsEndpoint ACS_ENDPOINT
  add_param_from_env acsConnectionString ACS_CONNECTION_STRING
  add_bool_param_from_env createCommunicationService SMS_CREATE_ACS
  local existing_secrets vault_secrets
  vault_secrets=$(secrets_in_vault)
  if [[ -n "${SMS_EXISTING_SECRETS+set}" ]]; then
    existing_secrets=$SMS_EXISTING_SECRETS
  else
    existing_secrets=$(provider_secrets "$vault_secrets")
    [[ -n $existing_secrets ]] && echo "==> Keeping the app settings that reference vault secrets: $existing_secrets"
  fi
  # The Event Grid key, whatever the provider (ACS's reports for earlier sends still arrive after a switch): a key
  # given to rotate it, else the vault's as it is (the subscription step reads it there), else a new one. The
  # template stores a given key as sms-eventgrid-key and the app setting references it.
  EVENTGRID_KEY=${SMS_EVENTGRID_KEY:-}
  if [[ -n $EVENTGRID_KEY ]]; then
    [[ $EVENTGRID_KEY =~ ^[A-Za-z0-9_-]{32,}$ ]] || die "SMS_EVENTGRID_KEY must be at least 32 letters, digits, - or _"
    echo "==> Event Grid key: the one in SMS_EVENTGRID_KEY"
  elif grep -qx 'sms-eventgrid-key' <<<"$vault_secrets"; then
    existing_secrets="${existing_secrets:+$existing_secrets,}sms-eventgrid-key"
    echo "==> Event Grid key: the one in the vault"
  else
    EVENTGRID_KEY=$(new_eventgrid_key)
    echo "==> Event Grid key: a new one, stored in the vault as sms-eventgrid-key"
  fi
  [[ -n $EVENTGRID_KEY ]] && add_param_json eventGridKey "$(json_string "$EVENTGRID_KEY")"
  if [[ -n $existing_secrets ]]; then
    local names=() name
    IFS=',' read -r -a names <<<"$existing_secrets"
    local items=()
    for name in "${names[@]}"; do
      name=${name//[[:space:]]/}
      [[ -n $name ]] && items+=("$(json_string "$name")")
    done
    add_param_json existingSecretNames "[$(IFS=,; echo "${items[*]}")]"
  fi
  if [[ "${SMS_GRANT_DEPLOYER:-true}" != false ]]; then
    local principal
    principal=$(deployer_principal)
    if [[ -n $principal ]]; then
      add_param_json deployerPrincipalId "$(json_string "${principal% *}")"
      add_param_json deployerPrincipalType "$(json_string "${principal#* }")"
    else
      echo "warning: could not look up your object id; you will need Storage Table Data Contributor to create API keys" >&2
    fi
  fi

  local workdir
  workdir=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: workdir is local to main
  trap "rm -rf '$workdir'" EXIT
  chmod 700 "$workdir"
  local params_file="$workdir/parameters.json"
  {
    echo '{'
    # shellcheck disable=SC2016  # "$schema" is a JSON key, not a shell expansion
    echo '  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",'
    echo '  "contentVersion": "1.0.0.0",'
    echo '  "parameters": {'
    local i
    for i in "${!PARAMS[@]}"; do
      if ((i + 1 < ${#PARAMS[@]})); then echo "    ${PARAMS[$i]},"; else echo "    ${PARAMS[$i]}"; fi
    done
    echo '  }'
    echo '}'
  } >"$params_file"

  echo "==> Infrastructure (deployment $DEPLOYMENT_NAME)"
  az deployment group create --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
    --template-file "$TEMPLATE" --parameters "@$params_file" -o none

  local app endpoint account vault provider
  app=$(output FUNCTION_APP_NAME)
  endpoint=$(output ENDPOINT_URL)
  account=$(output STORAGE_ACCOUNT_NAME)
  vault=$(output KEY_VAULT_NAME)
  provider=$(output SMS_PROVIDER)

  FUNCTION_APP_NAME=$app AZURE_RESOURCE_GROUP=$RESOURCE_GROUP AZURE_SUBSCRIPTION_ID=$subscription \
    sh "$HOOKS/resolve-vault-references.sh"

  local prefix_setting=""
  [[ -n "${SMS_TABLE_PREFIX:-}" ]] && prefix_setting="SMS_TABLE_PREFIX=$SMS_TABLE_PREFIX "

  echo "==> Code (remote build) to $app"
  local package="$workdir/app.zip"
  build_package "$package"
  publish "$RESOURCE_GROUP" "$app" "$package"

  ACS_EVENTS_SYSTEM_TOPIC=$(output ACS_EVENTS_SYSTEM_TOPIC) AZURE_RESOURCE_GROUP=$RESOURCE_GROUP \
    SMS_PUBLIC_BASE_URL=$(output SMS_PUBLIC_BASE_URL) STORAGE_ACCOUNT_NAME=$account KEY_VAULT_NAME=$vault \
    ACS_EVENTS_DEAD_LETTER_CONTAINER=$(output ACS_EVENTS_DEAD_LETTER_CONTAINER) \
    SMS_EVENTGRID_KEY_IN_VAULT=$(output SMS_EVENTGRID_KEY_IN_VAULT) SMS_EVENTGRID_KEY=$EVENTGRID_KEY \
    sh "$HOOKS/subscribe-acs-events.sh"

  cat <<EOF

Deployed.
  Endpoint:        $endpoint/api/sendmessage
  Function app:    $app
  Resource group:  $RESOURCE_GROUP
  Storage account: $account
  Key Vault:       $vault
  SMS provider:    $provider

Delivery receipts (docs/providers.md, "Wiring delivery receipts"): the gateway gives Twilio its status callback
with every message; for a Twilio Messaging Service, paste this as its status callback URL:
  $(output TWILIO_MESSAGING_SERVICE_CALLBACK_URL)

Replies and STOP (docs/replies.md): set each Twilio number's (or the Messaging Service's) incoming message
webhook, HTTP POST, to:
  $(output TWILIO_INBOUND_URL)

EOF
  if [[ -n "${SMS_CUSTOM_DOMAIN:-}" ]]; then
    cat <<EOF
Custom domain $SMS_CUSTOM_DOMAIN: create these DNS records, then wait for Front Door to approve the domain
and provision its certificate (docs/deploy.md, "Custom domain"):
  TXT    $(output CUSTOM_DOMAIN_TXT_NAME)  $(output CUSTOM_DOMAIN_TXT_VALUE)
  CNAME  $SMS_CUSTOM_DOMAIN  $(output CUSTOM_DOMAIN_CNAME_TARGET)
EOF
  fi
  cat <<EOF

Create the first API key from this checkout, signed in with az login as a principal that has
Storage Table Data Contributor on $account (this script granted it to you unless SMS_GRANT_DEPLOYER=false;
a new role assignment can take a few minutes to apply):

  ${prefix_setting}AzureWebJobsStorage__accountName=$account python -m gateway keys create --licensee <licensee-guid> --name "<key name>"

EOF
  if [[ $provider == outbox ]]; then
    echo "Note: the provider is outbox: messages are recorded in the Outbox table and not sent."
    echo "      Set TWILIO_* or ACS_*, then run this script again with --provider twilio or acs (docs/deploy.md)."
  fi
}

# Sourced (as tests/test_infra.py does to build the package), only define the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
