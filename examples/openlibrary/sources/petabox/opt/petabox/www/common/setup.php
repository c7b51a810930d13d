<?php
// Bootstraps the petabox include path and the cluster settings every
// petabox script starts with.  Placeholder for the olimage example fleet.
define('PETABOX_HOME', '/opt/petabox');
set_include_path(PETABOX_HOME . '/www/common' . PATH_SEPARATOR . get_include_path());
date_default_timezone_set('UTC');

require_once 'Item.inc';
