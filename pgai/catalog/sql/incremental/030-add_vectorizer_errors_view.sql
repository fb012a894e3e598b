-- The errors table becomes ai._vectorizer_errors behind a view, ai.vectorizer_errors, that adds
-- the vectorizer's name. Whoever could read the table can read the view.
alter table ai.vectorizer_errors rename to _vectorizer_errors;
alter index ai.vectorizer_errors_id_recorded_idx rename to _vectorizer_errors_id_recorded_idx;

create view ai.vectorizer_errors as
select e.*, v.name
from ai._vectorizer_errors e
left join ai.vectorizer v on e.id = v.id;

do $migration$
declare
    _grantee text;
begin
    for _grantee in
        select distinct pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee))
        from pg_catalog.pg_class c
        cross join lateral pg_catalog.aclexplode(c.relacl) a
        where c.oid = 'ai._vectorizer_errors'::pg_catalog.regclass
          and a.privilege_type = 'SELECT'
          and a.grantee operator(pg_catalog.<>) c.relowner
          and a.grantee operator(pg_catalog.<>) 0
    loop
        execute pg_catalog.format('grant select on ai.vectorizer_errors to %s', _grantee);
    end loop;
end
$migration$;
