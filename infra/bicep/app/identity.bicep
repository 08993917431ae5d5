// The app's user-assigned managed identity: its only credential. It reaches storage, telemetry, the vault and
// (optionally) Communication Services through the roles app/rbac.bicep and app/communication.bicep grant it.
// A user-assigned identity exists before the app does, so its roles can be granted before the app first starts.

@description('Identity name.')
param name string

@description('Region of the identity.')
param location string

@description('Tags for the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
