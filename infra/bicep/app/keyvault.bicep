// Key Vault in RBAC mode for the provider secrets and the Event Grid key, and the secrets given as parameters on
// this deployment. A secret is written only when a value is given, so a redeployment without it never empties or
// overwrites the secret already in the vault. The app reads them through Key Vault references (main.bicep's
// appSettings).

@description('Vault name.')
param name string

@description('Region of the vault.')
param location string

@description('Tags for the vault.')
param tags object

@description('Turn on purge protection (cannot be turned off again).')
param purgeProtection bool

@minValue(7)
@maxValue(90)
@description('Days a deleted vault or secret can be recovered.')
param softDeleteRetentionDays int

@description('Vault secret names, by the setting they hold: twilioAuthToken, twilioApiKeySecret, acsConnectionString, eventGridKey.')
param secretNames object

@secure()
@description('Twilio auth token; empty leaves the vault as it is.')
param twilioAuthToken string

@secure()
@description('Twilio API key secret; empty leaves the vault as it is.')
param twilioApiKeySecret string

@secure()
@description('Communication Services connection string; empty leaves the vault as it is.')
param acsConnectionString string

@secure()
@description('Key Event Grid gives the ACS events route; empty leaves the vault as it is.')
param eventGridKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:The platform resolves the app's Key Vault references over the public endpoint (no virtual network); every request needs an Entra token authorised by RBAC.
  // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: public network access is required without a virtual network.
  // checkov:skip=CKV_AZURE_110:Purge protection is the keyVaultPurgeProtection parameter, on by default; checkov cannot evaluate the expression (the API accepts only true, so off means leaving the property out).
  // checkov:skip=CKV_AZURE_42:Soft delete is always on and purge protection follows keyVaultPurgeProtection (on by default); checkov cannot evaluate that expression.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionDays
    // The API accepts only true here: leaving it out is how it stays off.
    enablePurgeProtection: purgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource twilioAuthTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(twilioAuthToken)) {
  // checkov:skip=CKV_AZURE_41:Provider credentials rotate on the provider's schedule; an expiry date in the vault would make the app's Key Vault reference stop resolving without warning.
  // checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the properties of a resource declared with if (...).
  parent: vault
  name: secretNames.twilioAuthToken
  properties: {
    value: twilioAuthToken
    contentType: 'text/plain'
  }
}

resource twilioApiKeySecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(twilioApiKeySecret)) {
  // checkov:skip=CKV_AZURE_41:Provider credentials rotate on the provider's schedule; an expiry date in the vault would make the app's Key Vault reference stop resolving without warning.
  // checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the properties of a resource declared with if (...).
  parent: vault
  name: secretNames.twilioApiKeySecret
  properties: {
    value: twilioApiKeySecret
    contentType: 'text/plain'
  }
}

resource acsConnectionStringSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(acsConnectionString)) {
  // checkov:skip=CKV_AZURE_41:Provider credentials rotate on the provider's schedule; an expiry date in the vault would make the app's Key Vault reference stop resolving without warning.
  // checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the properties of a resource declared with if (...).
  parent: vault
  name: secretNames.acsConnectionString
  properties: {
    value: acsConnectionString
    contentType: 'text/plain'
  }
}

resource eventGridKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(eventGridKey)) {
  // checkov:skip=CKV_AZURE_41:The Event Grid key changes only when it is rotated on purpose (docs/providers.md); an expiry date would make the app's Key Vault reference stop resolving and every ACS event answer 401.
  // checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the properties of a resource declared with if (...).
  parent: vault
  name: secretNames.eventGridKey
  properties: {
    value: eventGridKey
    contentType: 'text/plain'
  }
}

output name string = vault.name
