# check_access (DESIGN §4.3) in Rego for the side-by-side benchmark in bench/core.py: the required
# permission is service.<action>, granted by the union of the user's roles (service.* and * are
# wildcards), and users on the access_control policy's block list are always denied.
# Data: {"roles": {role: [permission]}, "users": {id: {"roles": [role]}},
#        "blocked_users": {id: true}}. The query is data.marketplace.check_access.allow.
package marketplace.check_access

import rego.v1

default allow := false

required := concat("", ["service.", input.action])

granted contains permission if {
	some role in data.users[input.user_id].roles
	some permission in data.roles[role]
}

has_permission if required in granted

has_permission if "service.*" in granted

has_permission if "*" in granted

allow if {
	has_permission
	not data.blocked_users[input.user_id]
}
