# Included by the install rules of packaging/CMakeLists.txt when installing
# (cmake --install, cpack), with cohort_unit_source, cohort_unit_destination,
# cohort_unit_staging (a directory of the build tree) and cohort_bindir set.
# Installs the unit with every /usr/local/bin/ (where a hand install puts the
# programs, so where the units in systemd/ run them from) replaced by the
# bindir of this install; everything else is as it is in systemd/.
get_filename_component(cohort_unit_name "${cohort_unit_source}" NAME)
if(IS_ABSOLUTE "${cohort_bindir}")
  set(cohort_unit_bindir "${cohort_bindir}")
else()
  set(cohort_unit_bindir "${CMAKE_INSTALL_PREFIX}/${cohort_bindir}")
endif()
file(READ "${cohort_unit_source}" cohort_unit_text)
string(REPLACE "/usr/local/bin/" "${cohort_unit_bindir}/" cohort_unit_text "${cohort_unit_text}")
set(cohort_unit_staged "${cohort_unit_staging}/${cohort_unit_name}")
file(WRITE "${cohort_unit_staged}" "${cohort_unit_text}")
# file(INSTALL) goes by time stamps, to the second: an install for another
# prefix right after this one would keep the old ExecStart=.
set(cohort_unit_installed "$ENV{DESTDIR}${cohort_unit_destination}/${cohort_unit_name}")
if(EXISTS "${cohort_unit_installed}")
  file(READ "${cohort_unit_installed}" cohort_unit_there)
  if(NOT cohort_unit_there STREQUAL cohort_unit_text)
    file(REMOVE "${cohort_unit_installed}")
  endif()
endif()
file(INSTALL "${cohort_unit_staged}" DESTINATION "${cohort_unit_destination}"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
