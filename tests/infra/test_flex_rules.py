"""The template breaks none of the Flex Consumption rules (tests/infra/flex_rules.py), and each rule can fail."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.infra.bicep import BICEP_DIR, Template
from tests.infra.flex_rules import APP_SETTINGS, RULES, SITE_CONFIG, SITE_PROPERTIES, violations


def test_the_template_breaks_no_flex_consumption_rule() -> None:
    found = violations(Template.load())
    assert not found, "the template sets what Flex Consumption refuses:\n" + "\n".join(found)


def test_every_rule_has_a_distinct_name_and_a_source() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names)), names
    assert all(len(rule.source) > 40 for rule in RULES)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"expected {old!r} once in {path.name}"
    path.write_text(text.replace(old, new))


# What an edited copy adds to app/function.bicep: one of each resource the rules refuse.
REFUSED_RESOURCES = """
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource managedCertificate 'Microsoft.Web/certificates@2024-04-01' = {
  name: 'cert'
  location: location
  properties: {
    serverFarmId: plan.id
    canonicalName: 'sms.example.com'
  }
}

resource tlsBinding 'Microsoft.Web/sites/hostNameBindings@2024-04-01' = {
  parent: functionApp
  name: 'sms.example.com'
  properties: {
    sslState: 'SniEnabled'
    thumbprint: managedCertificate.properties.thumbprint
  }
}

resource staging 'Microsoft.Web/sites/slots@2024-04-01' = {
  parent: functionApp
  name: 'staging'
  location: location
}
"""


def test_each_rule_fails_on_a_copy_of_the_template_that_breaks_it(tmp_path: Path) -> None:
    """Every rule reports an edited copy that brings back what it guards against (and names the place)."""
    copy = tmp_path / "bicep"
    shutil.copytree(BICEP_DIR, copy)
    function = copy / "app" / "function.bicep"
    storage = copy / "app" / "storage.bicep"

    refused_site_config = "".join(f"      {key}: 'x'\n" for key in SITE_CONFIG)
    _edit(function, "      minTlsVersion: '1.2'\n", f"      minTlsVersion: '1.2'\n{refused_site_config}")
    refused_properties = "".join(f"    {key}: 'x'\n" for key in SITE_PROPERTIES)
    _edit(function, "    httpsOnly: true\n", f"    httpsOnly: true\n{refused_properties}")
    refused_settings = "".join(f"  {{\n    name: '{name}'\n    value: ''\n  }}\n" for name in APP_SETTINGS)
    _edit(function, "var hostSettings = [\n", f"var hostSettings = [\n{refused_settings}")
    _edit(function, "@minValue(40)\n@maxValue(1000)\n", "@minValue(1)\n@maxValue(1000)\n")
    _edit(function, "maximumInstanceCount: maximumInstanceCount\n", "maximumInstanceCount: 10\n")
    function.write_text(function.read_text() + REFUSED_RESOURCES)
    _edit(storage, "param sku string\n", "param sku string = 'Standard_GZRS'\n")
    _edit(storage, "    name: sku\n", "    name: 'Standard_ZRS'\n")

    found = violations(Template.load(copy))
    broken = {line.split(": ", 1)[0] for line in found}
    assert broken == {rule.name for rule in RULES}, sorted({rule.name for rule in RULES} - broken)
    for expected in (
        "siteConfig.ftpsState: app/function.bicep: functionApp sets siteConfig.ftpsState",
        "properties.containerSize: app/function.bicep: functionApp sets properties.containerSize",
        "app setting WEBSITE_CONTENTSHARE: app/function.bicep: names the app setting WEBSITE_CONTENTSHARE",
        "publishing credentials policy: app/function.bicep: ftpPolicy declares the 'ftp' policy",
        "publishing credentials policy: app/function.bicep: scmPolicy declares the 'scm' policy",
        "platform certificate: app/function.bicep: managedCertificate is an App Service certificate",
        "platform certificate: app/function.bicep: tlsBinding binds a certificate to a host name",
        "deployment slot: app/function.bicep: staging is a deployment slot",
        "maximumInstanceCount below 40: app/function.bicep: parameter maximumInstanceCount allows 1 "
        "(needs @minValue(40))",
        "maximumInstanceCount below 40: app/function.bicep: functionApp sets maximumInstanceCount 10",
        "zone-redundant storage by default: app/storage.bicep: parameter sku defaults to Standard_GZRS",
        "zone-redundant storage by default: app/storage.bicep: storage is Standard_ZRS",
    ):
        assert expected in found, f"{expected!r} not among:\n" + "\n".join(found)


def test_the_scale_and_storage_rules_read_main_bicep_too(tmp_path: Path) -> None:
    """The parameters users set are in main.bicep: a default below 40, or ZRS by default, fails there as well."""
    copy = tmp_path / "bicep"
    shutil.copytree(BICEP_DIR, copy)
    main = copy / "main.bicep"
    _edit(main, "param maximumInstanceCount int = 100\n", "param maximumInstanceCount int = 20\n")
    _edit(main, "param storageSku string = 'Standard_LRS'\n", "param storageSku string = 'Standard_ZRS'\n")
    assert violations(Template.load(copy)) == [
        "maximumInstanceCount below 40: main.bicep: parameter maximumInstanceCount defaults to 20",
        "zone-redundant storage by default: main.bicep: parameter storageSku defaults to Standard_ZRS",
    ]
