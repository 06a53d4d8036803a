#!/bin/sh
# update.sh vendors the data files of build.Static from a Debian system's installed
# packages: the CA bundle of ca-certificates (Mozilla's roots only, built the way
# update-ca-certificates builds it, never a machine's local CAs) and the zoneinfo
# tree of tzdata, with both packages' copyright files. Run it on Debian (as root, to
# check the packages are unmodified) after upgrading the packages:
#
#	apt-get install --only-upgrade ca-certificates tzdata && build/internal/static/update.sh
#
# and commit the files with the new digest that TestStaticDigest then reports.
set -eu
cd "$(dirname "$0")/files"
dpkg --verify ca-certificates tzdata # the installed files are the packages'

# /etc/ssl/certs/ca-certificates.crt as update-ca-certificates writes it from the
# package's certificates alone: each selected certificate of /etc/ca-certificates.conf
# in order, with a final newline.
: >ca-certificates.crt
grep -v '^[#!]' /etc/ca-certificates.conf | grep -v '^$' | while read -r crt; do
	case "$crt" in mozilla/*) ;; *) echo "unexpected certificate $crt" >&2; exit 1 ;; esac
	sed -e '$a\' "/usr/share/ca-certificates/$crt" >>ca-certificates.crt
done

# The package's zoneinfo entries, in a tar that depends only on them.
dpkg -L tzdata | grep '^/usr/share/zoneinfo/' | sed 's|^/||' | LC_ALL=C sort >/tmp/zoneinfo.list
tar -C / --no-recursion --format=ustar --sort=name --owner=0 --group=0 --numeric-owner \
	--mtime=@0 -cf - -T /tmp/zoneinfo.list | gzip -9n >zoneinfo.tar.gz
rm /tmp/zoneinfo.list

cp /usr/share/doc/ca-certificates/copyright ca-certificates.copyright
cp /usr/share/doc/tzdata/copyright tzdata.copyright
{
	echo "# Written by update.sh from the installed Debian packages; read by build.Static."
	echo "# Licenses (see the .copyright files): ca-certificates: MPL-2.0 for the certificates"
	echo "# (Mozilla's certdata.txt), GPL-2+ for Debian's packaging; tzdata: public domain."
	for p in ca-certificates tzdata; do
		echo "$p $(dpkg-query -W -f='${Version}' "$p")"
	done
} >VERSIONS
