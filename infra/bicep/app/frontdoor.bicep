// Azure Front Door (Standard) in front of the function app, so the API answers on a custom host name over TLS
// with a certificate Front Door issues and renews.
//
// Why not a certificate on the app itself: Flex Consumption does not support "managed certificates, app service
// certificates, and other platform certificate-based features" (Flex Consumption plan hosting, Considerations,
// "Certificates"), so an App Service managed certificate or an imported PFX/Key Vault certificate cannot be bound
// to the app's host name. Front Door terminates TLS for the custom domain and calls the app on its default
// *.azurewebsites.net host name, which the platform already serves over TLS.
//
// Shape from Azure-Samples/azure-quickstart-templates, quickstarts/microsoft.cdn/front-door-standard-premium-custom-domain:
// profile, endpoint, origin group, origin, custom domain with a managed certificate, route; the DNS records the
// domain needs (a TXT _dnsauth record to prove ownership, then a CNAME to the endpoint) are outputs.

@description('Front Door profile name.')
param profileName string

@description('Front Door endpoint name; its host name is <name>-<hash>.z01.azurefd.net.')
param endpointName string

@description('Custom host name, for example sms.example.com.')
param customDomain string

@description('The function app\'s default host name, <app>.azurewebsites.net.')
param originHostName string

@allowed([
  'Standard_AzureFrontDoor'
  'Premium_AzureFrontDoor'
])
@description('Front Door tier. Standard is enough for TLS on a custom domain; Premium adds managed WAF rule sets and Private Link origins.')
param sku string

@description('Tags for the profile and endpoint.')
param tags object

resource profile 'Microsoft.Cdn/profiles@2024-02-01' = {
  name: profileName
  location: 'global'
  tags: tags
  sku: {
    name: sku
  }
}

resource endpoint 'Microsoft.Cdn/profiles/afdEndpoints@2024-02-01' = {
  parent: profile
  name: endpointName
  location: 'global'
  tags: tags
  properties: {
    enabledState: 'Enabled'
  }
}

// No health probes: with one origin there is nothing to fail over to, and every Front Door edge location probes
// on its own ("Health probes", Azure Front Door docs), which would keep a scale-to-zero app awake and billed.
resource originGroup 'Microsoft.Cdn/profiles/originGroups@2024-02-01' = {
  parent: profile
  name: 'function-app'
  properties: {
    loadBalancingSettings: {
      sampleSize: 4
      successfulSamplesRequired: 3
      additionalLatencyInMilliseconds: 50
    }
    sessionAffinityState: 'Disabled'
  }
}

// The origin host header is the app's own host name: App Service routes requests by Host.
resource origin 'Microsoft.Cdn/profiles/originGroups/origins@2024-02-01' = {
  parent: originGroup
  name: 'function-app'
  properties: {
    hostName: originHostName
    originHostHeader: originHostName
    httpPort: 80
    httpsPort: 443
    priority: 1
    weight: 1000
    enabledState: 'Enabled'
    enforceCertificateNameCheck: true
  }
}

resource domain 'Microsoft.Cdn/profiles/customDomains@2024-02-01' = {
  parent: profile
  name: replace(customDomain, '.', '-')
  properties: {
    hostName: customDomain
    tlsSettings: {
      certificateType: 'ManagedCertificate'
      minimumTlsVersion: 'TLS12'
    }
  }
}

// Everything is forwarded over HTTPS and nothing is cached: it is an API. HTTP requests are redirected to HTTPS.
resource route 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = {
  parent: endpoint
  name: 'api'
  properties: {
    customDomains: [
      {
        id: domain.id
      }
    ]
    originGroup: {
      id: originGroup.id
    }
    supportedProtocols: [
      'Http'
      'Https'
    ]
    patternsToMatch: [
      '/*'
    ]
    forwardingProtocol: 'HttpsOnly'
    linkToDefaultDomain: 'Enabled'
    httpsRedirect: 'Enabled'
  }
  // The route must not be created while the origin group is still empty (the quickstart's explicit dependency).
  dependsOn: [
    origin
  ]
}

output endpointHostName string = endpoint.properties.hostName
output validationRecordName string = '_dnsauth.${customDomain}'
output validationToken string = domain.properties.validationProperties.validationToken
