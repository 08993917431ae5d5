"""What Azure Functions Flex Consumption refuses, as checks over every file of the Bicep template.

Nobody here can deploy, so a rule the platform enforces only at deployment time is enforced here instead: each
``Rule`` reads the parsed template (``tests/infra/bicep.py``), returns one message per place that breaks it, and
names its source. ``tests/infra/test_flex_rules.py`` runs them on the real template (no message) and on an edited
copy that breaks each of them (a message from every rule). Change a rule only with a newer source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.infra.bicep import Template, decorators, resource_body, unquote

# The sources. Microsoft's pages are cited by title and section as published on learn.microsoft.com.
DEPRECATIONS = (
    "Azure Functions app settings reference, 'Flex Consumption plan deprecations' "
    "(learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations)"
)
CONSIDERATIONS = (
    "Azure Functions Flex Consumption plan hosting, 'Considerations' "
    "(learn.microsoft.com/azure/azure-functions/flex-consumption-plan#considerations)"
)
ISSUE_21032 = (
    "microsoft/azure-pipelines-tasks#21032: ARM refuses 'The following list of 4 site configuration properties "
    "(Site.SiteConfig.FtpsState, Site.SiteConfig.Use32BitWorkerProcess, Site.SiteConfig.NetFrameworkVersion, "
    "Site.SiteConfig.FunctionsRuntimeScaleMonitoringEnabled) for Flex Consumption sites is invalid'"
)
ISSUE_22254 = (
    "microsoft/azure-pipelines-tasks#22254: '400 BadRequest - The following site configuration property "
    "(Site.SiteConfig.FunctionAppScaleLimit) ...' on every Flex Consumption deployment"
)
SAMPLES = (
    "Azure-Samples/azure-functions-flex-consumption-samples, IaC/bicep/main.bicep "
    "(@minValue(40) @maxValue(1000) param maximumInstanceCount) and "
    "Azure-Samples/functions-quickstart-python-http-azd, infra/app/api.bicep"
)
ZRS_REGIONS = (
    "Azure Storage, 'Azure regions that support zone-redundant storage (ZRS)' and '... geo-zone-redundant storage "
    "(GZRS)' (learn.microsoft.com/azure/storage/common/redundancy-regions-zrs): Flex Consumption regions such as "
    "westus, northcentralus, westcentralus, ukwest, southindia and australiasoutheast are not listed"
)

# siteConfig properties (on the site, or in a sites/config 'web' resource) the plan refuses, with why.
SITE_CONFIG = {
    "ftpsState": f"'FTPS not supported' ({DEPRECATIONS}); {ISSUE_21032}",
    "alwaysOn": f"'Not valid' ({DEPRECATIONS}); the official samples still write alwaysOn: false, the list wins",
    "use32BitWorkerProcess": f"'32-bit not supported' ({DEPRECATIONS}); {ISSUE_21032}",
    "linuxFxVersion": f"'Replaced by properties.functionAppConfig.runtime' ({DEPRECATIONS})",
    "windowsFxVersion": f"'Not valid' ({DEPRECATIONS})",
    "netFrameworkVersion": f"replaced by functionAppConfig.runtime.version ({DEPRECATIONS}); {ISSUE_21032}",
    "javaVersion": f"replaced by functionAppConfig.runtime.version ({DEPRECATIONS})",
    "powerShellVersion": f"replaced by functionAppConfig.runtime.version ({DEPRECATIONS})",
    "functionAppScaleLimit": f"'Renamed as maximumInstanceCount' ({DEPRECATIONS}); {ISSUE_22254}",
    "preWarmedInstanceCount": f"'Renamed as alwaysReadyInstances' ({DEPRECATIONS})",
    "functionsRuntimeScaleMonitoringEnabled": ISSUE_21032,
    "vnetRouteAllEnabled": f"'Not used for networking in Flex Consumption' ({DEPRECATIONS})",
}

# Site properties (Microsoft.Web/sites properties) the plan refuses. Only on the site: the plan itself
# (Microsoft.Web/serverfarms) takes reserved: true, as the samples write it.
SITE_PROPERTIES = {
    "containerSize": f"'Renamed as instanceMemoryMB' ({DEPRECATIONS})",
    "dnsConfiguration": f"DNS comes from the integrated virtual network ({DEPRECATIONS})",
    "isXenon": f"'Not valid' ({DEPRECATIONS})",
    "isReserved": f"'Not valid' ({DEPRECATIONS})",
    "reserved": f"properties.isReserved is 'Not valid' ({DEPRECATIONS}); its ARM name is `reserved`",
    "vnetBackupRestoreEnabled": f"'Not used for networking in Flex Consumption' ({DEPRECATIONS})",
    "vnetContentShareEnabled": f"'Not used for networking in Flex Consumption' ({DEPRECATIONS})",
    "vnetImagePullEnabled": f"'Not used for networking in Flex Consumption' ({DEPRECATIONS})",
    "vnetRouteAllEnabled": f"'Not used for networking in Flex Consumption' ({DEPRECATIONS})",
}

# App settings the plan refuses or ignores.
APP_SETTINGS = {
    **{name: DEPRECATIONS for name in (
        "ENABLE_ORYX_BUILD", "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_WORKER_RUNTIME_VERSION", "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT",
        "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED", "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTOVERVNET", "WEBSITE_CONTENTSHARE",
        "WEBSITE_DNS_SERVER", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_NODE_DEFAULT_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL",
    )},
    "WEBSITE_TIME_ZONE": f"'Timezones' ({CONSIDERATIONS})",
    "TZ": f"'Timezones' ({CONSIDERATIONS})",
    "WEBSITE_LOAD_CERTIFICATES": f"'Certificates' ({CONSIDERATIONS})",
}

CERTIFICATES = (
    f"'Certificates': managed certificates, app service certificates and other platform certificate-based "
    f"features aren't currently supported ({CONSIDERATIONS}); binding one fails with 'Cannot find SiteCertificate'"
)
PUBLISHING_POLICIES = (
    f"Flex Consumption has no FTP endpoint (properties.ftpsState: 'FTPS not supported', {DEPRECATIONS}), and "
    f"neither official Flex sample ({SAMPLES}) declares a ftp or scm policy: a child resource the plan does not "
    "take fails the whole deployment"
)
SLOTS = f"'Deployments: Deployment slots aren't currently supported' ({CONSIDERATIONS})"
SCALE = (
    f"{SAMPLES}; the plan page's 'Considerations' gave 40 as 'the lowest maximum scale' ({CONSIDERATIONS}), and "
    "lower values are accepted only where the platform has caught up with the page's newer wording"
)
ZONE_REDUNDANT_SKUS = {"Standard_ZRS", "Standard_GZRS", "Standard_RAGZRS", "Premium_ZRS"}
LOWEST_MAXIMUM_SCALE = 40


@dataclass(frozen=True)
class Rule:
    """One thing Flex Consumption refuses: a name every message starts with, its source, and the check."""

    name: str
    source: str
    check: Callable[[Template], Iterator[str]]


# ---------------------------------------------------------------------------------------------------------------
# What the rules read
# ---------------------------------------------------------------------------------------------------------------


def _sites(template: Template) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(file, name, properties) of every function app."""
    for file, name, resource in template.resources("Microsoft.Web/sites"):
        yield file, name, resource_body(resource).get("properties") or {}


def _site_config_keys(template: Template) -> Iterator[tuple[str, str, str]]:
    """(file, resource, key) of every siteConfig property, on a site or in a sites/config 'web' resource."""
    for file, name, properties in _sites(template):
        for key in properties.get("siteConfig") or {}:
            yield file, name, unquote(key)
    for file, name, resource in template.resources("Microsoft.Web/sites/config"):
        body = resource_body(resource)
        if unquote(body.get("name")) == "web":
            for key in body.get("properties") or {}:
                yield file, name, unquote(key)


def _code(text: str) -> str:
    """Bicep source without its comments (a `//` after `:` is part of a URL in a string)."""
    return "\n".join(re.sub(r"(^|[^:])//.*$", r"\1", line) for line in text.splitlines())


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------------------


def site_config_property(key: str) -> Callable[[Template], Iterator[str]]:
    def check(template: Template) -> Iterator[str]:
        for file, name, found in _site_config_keys(template):
            if found == key:
                yield f"{file}: {name} sets siteConfig.{key}"
    return check


def site_property(key: str) -> Callable[[Template], Iterator[str]]:
    def check(template: Template) -> Iterator[str]:
        for file, name, properties in _sites(template):
            if key in {unquote(found) for found in properties}:
                yield f"{file}: {name} sets properties.{key}"
    return check


def app_setting(setting: str) -> Callable[[Template], Iterator[str]]:
    """Any mention outside comments: a `name: 'X'` pair in a list, an `X:` key in an object, a variable's text."""
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(setting)}(?![A-Za-z0-9_])")

    def check(template: Template) -> Iterator[str]:
        for file, text in template.texts.items():
            if pattern.search(_code(text)):
                yield f"{file}: names the app setting {setting}"
    return check


def publishing_credentials_policies(template: Template) -> Iterator[str]:
    for file, name, resource in template.resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies"):
        yield f"{file}: {name} declares the '{unquote(resource_body(resource).get('name'))}' policy"


def platform_certificates(template: Template) -> Iterator[str]:
    for file, name, _ in template.resources("Microsoft.Web/certificates"):
        yield f"{file}: {name} is an App Service certificate"
    for file, name, resource in template.resources("Microsoft.Web/sites/hostNameBindings"):
        properties = resource_body(resource).get("properties") or {}
        if properties.get("sslState", "Disabled") != "Disabled" or "thumbprint" in properties:
            yield f"{file}: {name} binds a certificate to a host name"


def deployment_slots(template: Template) -> Iterator[str]:
    for file, name, _ in template.resources("Microsoft.Web/sites/slots"):
        yield f"{file}: {name} is a deployment slot"


def maximum_instance_count(template: Template) -> Iterator[str]:
    """Every maximumInstanceCount parameter is bounded below by 40, and no value below 40 is written."""
    for file, parsed in template.files.items():
        spec = parsed.get("parameters", {}).get("maximumInstanceCount")
        if spec is not None:
            minimum = _integer(decorators(spec).get("min_value"))
            if minimum is None or minimum < LOWEST_MAXIMUM_SCALE:
                yield f"{file}: parameter maximumInstanceCount allows {minimum} (needs @minValue(40))"
            default = _integer(spec.get("default"))
            if default is not None and default < LOWEST_MAXIMUM_SCALE:
                yield f"{file}: parameter maximumInstanceCount defaults to {default}"
    for file, name, properties in _sites(template):
        scale = (properties.get("functionAppConfig") or {}).get("scaleAndConcurrency") or {}
        value = _integer(scale.get("maximumInstanceCount"))
        if value is not None and value < LOWEST_MAXIMUM_SCALE:
            yield f"{file}: {name} sets maximumInstanceCount {value}"


def storage_sku(template: Template) -> Iterator[str]:
    """No storage account is zone-redundant unless asked: SKU parameters default to what every region offers."""
    for file, parsed in template.files.items():
        for name, spec in parsed.get("parameters", {}).items():
            allowed = decorators(spec).get("allowed") or []
            if "Standard_LRS" in allowed and spec.get("default") in ZONE_REDUNDANT_SKUS:
                yield f"{file}: parameter {name} defaults to {spec['default']}"
    for file, name, resource in template.resources("Microsoft.Storage/storageAccounts"):
        sku = (resource_body(resource).get("sku") or {}).get("name")
        if sku in ZONE_REDUNDANT_SKUS:
            yield f"{file}: {name} is {sku}"


RULES: tuple[Rule, ...] = (
    *(Rule(f"siteConfig.{key}", source, site_config_property(key)) for key, source in SITE_CONFIG.items()),
    *(Rule(f"properties.{key}", source, site_property(key)) for key, source in SITE_PROPERTIES.items()),
    *(Rule(f"app setting {name}", source, app_setting(name)) for name, source in APP_SETTINGS.items()),
    Rule("publishing credentials policy", PUBLISHING_POLICIES, publishing_credentials_policies),
    Rule("platform certificate", CERTIFICATES, platform_certificates),
    Rule("deployment slot", SLOTS, deployment_slots),
    Rule("maximumInstanceCount below 40", SCALE, maximum_instance_count),
    Rule("zone-redundant storage by default", ZRS_REGIONS, storage_sku),
)


def violations(template: Template) -> list[str]:
    """Every place the template breaks a rule, as '<rule>: <where>' lines."""
    return [f"{rule.name}: {where}" for rule in RULES for where in rule.check(template)]
