// An Azure Communication Services resource for the acs provider, and the role that lets the app's identity send
// SMS through it with Microsoft Entra ID (no connection string). Phone numbers are bought in the portal.
//
// Why Contributor, and not a narrower role (docs/deploy.md, "Least privilege on Communication Services"):
//  - Communication Services documents no data action for sending SMS, so no role can grant "send SMS" alone;
//    its Entra quickstarts assign Contributor ("Quickstart: Authenticate using Microsoft Entra ID",
//    communication-services/quickstarts/identity/service-principal-from-cli: `az ad sp create-for-rbac --role
//    Contributor`), and the open docs issues asking for a narrower role (MicrosoftDocs/azure-docs #109461,
//    #117739, #115487) have no answer.
//  - The only narrower built-in, "Communication and Email Service Owner" (09976791-48a7-449e-bb21-39d1a415f350),
//    still holds CommunicationServices/ListKeys, RegenerateKey and delete: the permissions this would remove.
//  - The one documented custom role (CommunicationServices/Read + Write + EmailServices/write) is documented for
//    SMTP email only (communication-services/quickstarts/email/send-email-smtp/smtp-authentication); using it for
//    SMS is untested, and a role that turns out too narrow fails every send after a "successful" deployment.
// So the assignment is Contributor on this one resource and nothing wider. An operator who wants no role at all
// gives the app a connection string from Key Vault instead (ACS_CONNECTION_STRING).

@description('Communication Services resource name.')
param name string

@description('Tags for the resource.')
param tags object

@description('Where the resource keeps its data at rest.')
param dataLocation string

@description('Resource id of the app\'s user-assigned identity; it seeds the assignment name.')
param identityId string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

var contributorRoleId = 'b24988ac-6180-42a0-ab88-20f7382dd24c'

resource communicationService 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: name
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource senderAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, name, identityId, contributorRoleId)
  scope: communicationService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = 'https://${communicationService.properties.hostName}'
