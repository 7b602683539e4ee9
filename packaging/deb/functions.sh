# cohort_system_user NAME HOME COMMENT: the system user NAME with its own
# group, home HOME (created by cohort_state_dir) and no login shell, unless
# a user of that name exists already (made by hand before the package, or by
# an earlier install: users are kept on removal).
cohort_system_user() {
	if getent passwd "$1" >/dev/null; then
		return 0
	fi
	if getent group "$1" >/dev/null; then
		adduser --quiet --system --ingroup "$1" --home "$2" --no-create-home \
			--shell /usr/sbin/nologin --comment "$3" "$1"
	else
		adduser --quiet --system --group --home "$2" --no-create-home \
			--shell /usr/sbin/nologin --comment "$3" "$1"
	fi
}

# cohort_state_dir DIR OWNER MODE: DIR exists, owned by OWNER (and OWNER's
# group) with MODE, unless the administrator chose otherwise with
# dpkg-statoverride. Only DIR itself changes, never what is in it.
cohort_state_dir() {
	mkdir -p "$1"
	if ! dpkg-statoverride --list "$1" >/dev/null 2>&1; then
		chown "$2:$(id -gn "$2")" "$1"
		chmod "$3" "$1"
	fi
}

