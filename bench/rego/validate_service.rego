# The five default policies of the built-in bundle (DESIGN §4.4), written in Rego for the
# side-by-side benchmark in bench/core.py. The query is data.marketplace.validate_service.result.
package marketplace.validate_service

import rego.v1

blocked_countries := {"KP", "IR", "SY", "CU"}

accepted_certifications := {"SOC2", "ISO27001"}

# Levels at or above "confidential" need a certification.
certified_levels := {"confidential", "restricted"}

# Country codes compare case-insensitively.
residency := [upper(c) | some c in object.get(input, ["compliance", "data_residency"], [])]

# Certifications compare ignoring case, spaces and dashes ("SOC 2" = "SOC2").
certifications contains normalized if {
	some c in object.get(input, ["compliance", "certifications"], [])
	normalized := replace(replace(upper(c), " ", ""), "-", "")
}

violations contains "data-residency-required" if count(residency) < 1

violations contains "restricted-countries" if {
	some c in residency
	c in blocked_countries
}

violations contains "confidential-certification-required" if {
	lower(input.compliance.level) in certified_levels
	count(certifications & accepted_certifications) == 0
}

https_endpoint if startswith(lower(input.endpoint.url), "https://")

violations contains "https-required" if {
	input.environment == "production"
	not https_endpoint
}

violations contains "enterprise-sla-minimum" if {
	input.sla.support_level == "enterprise"
	input.sla.availability < 99.9
}

result := {"compliant": count(violations) == 0, "violations": sort(violations)}
