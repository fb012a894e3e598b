-- loading_uri gained aws_role_arn; drop the two-argument overload so calls stay unambiguous.
drop function if exists ai.loading_uri(pg_catalog.name, int4);
