#!/usr/bin/env pwsh
# Twin of infra/hooks/eventgrid-key.sh for azd on Windows (PowerShell 7); that script says why and what it reads.
# Before provisioning with azd: make sure the azd environment holds SMS_EVENTGRID_KEY; the first time, generate one
# (32 random bytes from the system's cryptographic generator, as 64 hex digits).
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

function Fail([string] $Message) {
    [Console]::Error.WriteLine("eventgrid-key: $Message")
    exit 1
}

$key = $env:SMS_EVENTGRID_KEY
if ($key) {
    if ($key -cmatch '[^A-Za-z0-9_-]') { Fail 'SMS_EVENTGRID_KEY must be letters, digits, - or _ only: azd env set SMS_EVENTGRID_KEY <key>' }
    if ($key.Length -lt 32) { Fail 'SMS_EVENTGRID_KEY must be at least 32 characters: azd env set SMS_EVENTGRID_KEY <key>' }
    Write-Host "Event Grid key: the azd environment's SMS_EVENTGRID_KEY."
    exit 0
}
if (-not (Get-Command azd -ErrorAction SilentlyContinue)) { Fail 'azd is not on PATH (this hook runs under azd)' }
$bytes = [System.Security.Cryptography.RandomNumberGenerator]::GetBytes(32)
$key = [System.Convert]::ToHexString($bytes).ToLowerInvariant()
& azd env set SMS_EVENTGRID_KEY $key
if ($LASTEXITCODE -ne 0) { Fail 'azd env set failed (the error is above)' }
Write-Host 'Event Grid key: generated and kept in the azd environment as SMS_EVENTGRID_KEY; the template stores it in Key Vault.'
