#!/opt/openlibrary/venv/bin/python3
"""Follows the infobase edit log and pushes changed works, editions and
authors to Solr.  Usage: solr_updater.py CONFIG --state-file FILE"""

import argparse
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--state-file", default="solr-update.offset")
    p.add_argument("--solr-url", default="http://ol-solr0:8983/solr/openlibrary")
    args = p.parse_args()
    print(f"would follow the edit log into {args.solr_url}", file=sys.stderr)


if __name__ == "__main__":
    main()
