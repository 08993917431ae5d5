// Binds a certificate to a host name already added to the app: sets SNI TLS on the existing binding.
// A binding and the certificate that depends on it cannot both be declared in one template, so main.bicep
// adds the host name (TLS off), creates the managed certificate, then calls this module to turn TLS on.

@description('Function app the host name is bound to.')
param siteName string

@description('Custom host name, already bound to the app.')
param hostName string

@description('Thumbprint of the certificate for hostName.')
param certificateThumbprint string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource tlsBinding 'Microsoft.Web/sites/hostNameBindings@2024-04-01' = {
  parent: site
  name: hostName
  properties: {
    siteName: siteName
    hostNameType: 'Verified'
    customHostNameDnsRecordType: 'CName'
    sslState: 'SniEnabled'
    thumbprint: certificateThumbprint
  }
}
