// One secret in an existing Key Vault. main.bicep calls it only for secrets given as parameters, so a
// deployment without a value never overwrites or empties a secret already in the vault.

@description('Existing Key Vault (RBAC mode).')
param vaultName string

@description('Secret name, for example twilio-auth-token.')
param secretName string

@secure()
@description('Secret value.')
param secretValue string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:Provider credentials rotate on the provider's schedule; an expiry date in the vault would make the app's Key Vault reference stop resolving without warning.
  parent: vault
  name: secretName
  properties: {
    value: secretValue
    contentType: 'text/plain'
  }
}
