#!/usr/bin/env pwsh
# Twin of infra/hooks/subscribe-acs-events.sh for azd on Windows (PowerShell 7); that script says why, which
# template and what it reads. After the code is deployed: subscribe the gateway's ACS events route to the
# Communication Services system topic by deploying infra/bicep/acs-events-subscription.bicep, retrying while the
# new code starts. The key goes to the deployment in a private temporary file, never on a command line.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$SecretName = 'sms-eventgrid-key'
$DeploymentName = 'acs-events-subscription'

function Fail([string] $Message) {
    [Console]::Error.WriteLine("subscribe-acs-events: $Message")
    exit 1
}

function Get-WholeNumber([string] $Name, [string] $Value, [int] $Default) {
    if (-not $Value) { return $Default }
    if ($Value -notmatch '^[0-9]+$') { Fail "$Name must be a whole number, not '$Value'" }
    return [int] $Value
}

$topic = $env:ACS_EVENTS_SYSTEM_TOPIC
if (-not $topic) {
    Write-Host 'ACS events: no Communication Services resource in this deployment, so no subscription to create.'
    exit 0
}
$group = $env:AZURE_RESOURCE_GROUP
$baseUrl = $env:SMS_PUBLIC_BASE_URL
$account = $env:STORAGE_ACCOUNT_NAME
$container = $env:ACS_EVENTS_DEAD_LETTER_CONTAINER
$attempts = Get-WholeNumber 'SMS_EVENTS_SUBSCRIBE_ATTEMPTS' $env:SMS_EVENTS_SUBSCRIBE_ATTEMPTS 5
$waitSeconds = Get-WholeNumber 'SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS' $env:SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS 30
if (-not $group) { Fail 'AZURE_RESOURCE_GROUP is not set' }
if (-not $account -or -not $container) {
    Fail "STORAGE_ACCOUNT_NAME and ACS_EVENTS_DEAD_LETTER_CONTAINER must be set (the deployment's outputs)"
}
if ($attempts -lt 1) { Fail 'SMS_EVENTS_SUBSCRIBE_ATTEMPTS must be at least 1' }
if ($baseUrl -cnotmatch '^https://[A-Za-z0-9.:_-]+(/[A-Za-z0-9._-]+)*$') {
    Fail "SMS_PUBLIC_BASE_URL must be https://<host> without a trailing slash, not '$baseUrl'"
}
if ("$topic$account$container" -cmatch '[^A-Za-z0-9_-]') { Fail 'unexpected characters in the topic, account or container name' }
if ($env:SMS_EVENTGRID_KEY_IN_VAULT -eq 'false') {
    Fail ("the deployment set no Event Grid key on the app, so Event Grid's validation would be refused.`n" +
        "Provision again with the key (azd: azd env get-value SMS_EVENTGRID_KEY shows it; azd releases before`n" +
        'Azure/azure-dev#6064 read the parameters before the preprovision hook had set it), then run this again.')
}
if (-not (Get-Command az -ErrorAction SilentlyContinue)) { Fail 'the Azure CLI (az) is not installed' }

$key = $env:SMS_EVENTGRID_KEY
if (-not $key) {
    $vault = $env:KEY_VAULT_NAME
    if (-not $vault) { Fail 'neither SMS_EVENTGRID_KEY nor KEY_VAULT_NAME is set' }
    $key = (& az keyvault secret show --vault-name $vault --name $SecretName --query value -o tsv | Out-String).Trim()
    if ($LASTEXITCODE -ne 0) {
        Fail "could not read $SecretName from $vault (the error is above): you need Key Vault Secrets User or Officer on it"
    }
}
if ($key -cmatch '[^A-Za-z0-9_-]') { Fail 'the Event Grid key must be letters, digits, - or _ only' }
if ($key.Length -lt 32) { Fail 'the Event Grid key must be at least 32 characters' }

$template = Join-Path (Split-Path -Parent $PSScriptRoot) 'bicep/acs-events-subscription.bicep'
if (-not (Test-Path $template)) { Fail "missing $template" }
$parameters = New-TemporaryFile
try {
    $document = [ordered]@{
        '$schema' = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#'
        contentVersion = '1.0.0.0'
        parameters = [ordered]@{
            systemTopicName = @{ value = $topic }
            publicBaseUrl = @{ value = $baseUrl }
            eventGridKey = @{ value = $key }
            storageAccountName = @{ value = $account }
            deadLetterContainerName = @{ value = $container }
        }
    }
    Set-Content -Path $parameters -Value ($document | ConvertTo-Json -Depth 5) -Encoding utf8
    Write-Host "==> ACS events: subscribing $baseUrl to system topic $topic (Event Grid validates the endpoint now)"
    $attempt = 1
    while ($true) {
        & az deployment group create --resource-group $group --name $DeploymentName `
            --template-file $template --parameters "@$parameters" -o none
        if ($LASTEXITCODE -eq 0) { break }
        if ($attempt -ge $attempts) {
            Fail ("Event Grid could not create the subscription after $attempts attempts (the last error is above).`n" +
                "A validation failure means the app did not answer the handshake: check that it runs (GET $baseUrl/api/health) and`n" +
                "that its SMS_EVENTGRID_KEY setting resolves (the app's Environment variables blade), then run this again:`n" +
                'azd hooks run postdeploy')
        }
        [Console]::Error.WriteLine("    not yet (attempt $attempt of $attempts); waiting $waitSeconds s for the app to answer")
        $attempt += 1
        Start-Sleep -Seconds $waitSeconds
    }
} finally {
    Remove-Item -Path $parameters -ErrorAction SilentlyContinue
}
Write-Host '    subscribed: SMS delivery reports and inbound SMS go to the gateway (docs/providers.md, "Wiring delivery receipts")'
