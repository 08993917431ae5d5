#!/bin/sh
# Before anything is created: stop when the function app's name belongs to another app, and say how to cut over.
#
# App names are global: the name is also the host <name>.azurewebsites.net. The default name is the host the
# existing clients call, so a first deployment while the old app exists would fail half-way (after the storage,
# vault and roles exist). This asks App Service whether the name is free (POST .../providers/Microsoft.Web/
# checknameavailability, REST API "Check Name Availability", api-version 2024-04-01, type Microsoft.Web/sites).
# A name held by this environment's own app (tagged azd-env-name=<environment> by the template, in the target
# resource group) is a redeployment and passes, as the Azure CLI's `az webapp up` treats an existing app of its own.
#
# Run by azd as the preprovision hook (azure.yaml) and by infra/deploy.sh. Reads, from the environment:
#   AZURE_ENV_NAME          the environment (azd's; deploy.sh passes its first argument)
#   SMS_FUNCTION_APP_NAME   the app name (default: the template's, production-eros-gateway-api-sms-wa)
#   AZURE_RESOURCE_GROUP    the target resource group, when known
#   AZURE_SUBSCRIPTION_ID   the subscription (default: the Azure CLI's current one)
#   SMS_DEPLOY_COMMAND      how to deploy again, shown in the steps (default: azd's commands)
# Needs the Azure CLI, signed in (az login). infra/hooks/check-app-name.ps1 is its twin for azd on Windows.
set -eu

# The template's default (infra/bicep/main.bicep, functionAppName); tests/infra checks the two agree.
PRODUCTION_NAME=production-eros-gateway-api-sms-wa
API_VERSION=2024-04-01

fail() {
  echo "check-app-name: $*" >&2
  exit 1
}

name=${SMS_FUNCTION_APP_NAME:-$PRODUCTION_NAME}
env_name=${AZURE_ENV_NAME:-}
group=${AZURE_RESOURCE_GROUP:-}
[ -n "$env_name" ] || fail "AZURE_ENV_NAME is not set (azd sets it; infra/deploy.sh passes its environment)"
command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not installed"

# The rule App Service applies (2 to 60 letters, digits and hyphens, not at either end), checked here so the
# name can go into the request body as it is.
case $name in
  -* | *- | *[!A-Za-z0-9-]*) fail "'$name' is not a valid app name: use letters, digits and hyphens, not at either end" ;;
esac
[ "${#name}" -ge 2 ] && [ "${#name}" -le 60 ] || fail "'$name' is not a valid app name: use 2 to 60 characters"

subscription=${AZURE_SUBSCRIPTION_ID:-}
if [ -z "$subscription" ]; then
  subscription=$(az account show --query id -o tsv) || fail "not signed in to the Azure CLI: run az login"
fi

url="https://management.azure.com/subscriptions/$subscription/providers/Microsoft.Web/checknameavailability?api-version=$API_VERSION"
body="{\"name\": \"$name\", \"type\": \"Microsoft.Web/sites\"}"
available=$(az rest --method post --url "$url" --body "$body" --query nameAvailable -o tsv) ||
  fail "could not ask App Service whether '$name' is free (the error is above); nothing was created"
case $available in
  true | True)
    echo "App name $name: free."
    exit 0
    ;;
  false | False) ;;
  *) fail "unexpected answer from App Service's name check: '$available'; nothing was created" ;;
esac

reason=$(az rest --method post --url "$url" --body "$body" --query reason -o tsv) || reason=""
if [ "$reason" = Invalid ]; then
  message=$(az rest --method post --url "$url" --body "$body" --query message -o tsv) || message=""
  fail "App Service refuses the name '$name': $message"
fi

# Taken. Fine when it is this environment's own app in the target group: a redeployment.
holders=$(az resource list --name "$name" --resource-type Microsoft.Web/sites \
  --query "[].[resourceGroup, tags.\"azd-env-name\"]" -o tsv) ||
  fail "could not look for '$name' in subscription $subscription (the error is above); nothing was created"
lower() {
  printf '%s' "$1" | tr '[:upper:]' '[:lower:]'
}
tab=$(printf '\t')
holder=""
while IFS="$tab" read -r holder_group holder_env; do
  [ -n "$holder_group" ] || continue
  holder=$holder_group
  if [ "$holder_env" = "$env_name" ] && { [ -z "$group" ] || [ "$(lower "$holder_group")" = "$(lower "$group")" ]; }; then
    echo "App name $name: this environment's own app (resource group $holder_group); deploying over it."
    exit 0
  fi
done <<EOF
$holders
EOF

# A name of this environment's own to deploy under first: stable across runs, different per subscription.
slug=$(printf '%s' "$env_name" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9-' '-' | cut -c1-30)
suffix=$(printf '%s/%s' "$subscription" "$env_name" | cksum | cut -d' ' -f1)
interim="sms-gateway-$slug-$(printf '%08x' "$suffix")"
if [ -n "${SMS_DEPLOY_COMMAND:-}" ]; then
  deploy_interim="SMS_FUNCTION_APP_NAME=$interim $SMS_DEPLOY_COMMAND"
  deploy_production="SMS_FUNCTION_APP_NAME=$name $SMS_DEPLOY_COMMAND"
else
  deploy_interim="azd env set SMS_FUNCTION_APP_NAME $interim && azd up"
  deploy_production="azd env set SMS_FUNCTION_APP_NAME $name && azd up"
fi
group_shown=${group:-<resource group of this environment>}
if [ -n "$holder" ]; then
  where="another app in resource group $holder of this subscription holds it"
  delete_old="az resource delete --resource-group $holder --name $name --resource-type Microsoft.Web/sites"
else
  where="an app outside subscription $subscription holds it"
  delete_old="delete the old app in the subscription that holds it (portal, or az resource delete there)"
fi

cat >&2 <<EOF
check-app-name: the app name '$name' is taken: $where.
App names are global (the name is the host $name.azurewebsites.net), so deploying now would fail
half-way. Nothing has been created. Deploy under a name of your own first, then cut over
(docs/deploy.md, "Taking over the production name"):

  1. Deploy under another name, for example:
       $deploy_interim
  2. Prove it: create an API key and send a test SMS to https://$interim.azurewebsites.net
     (docs/deploy.md, "Create the first API key" and "Send the first SMS"); give each client its key.
  3. Move the clients without changing their URL, one of:
     a. They call a host name of your own (a CNAME to the old app): redeploy with it as SMS_CUSTOM_DOMAIN (Front Door),
        validate it with the TXT record, then point the CNAME at Front Door (docs/deploy.md, "Custom domain").
     b. They call $name.azurewebsites.net: the name must move, with a few minutes of downtime.
        Flex Consumption runs one app per plan, so remove the interim app first, then the old one,
        then deploy again under the production name at once:
          az functionapp delete --resource-group $group_shown --name $interim
          $delete_old
          $deploy_production
        The data (tables, queues, API keys) stays in this environment's storage account.
EOF
exit 1
