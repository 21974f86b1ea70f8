--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: auth_group; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_group (
    id integer NOT NULL,
    name character varying(80) NOT NULL
);


--
-- Name: auth_group_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.auth_group_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: auth_group_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.auth_group_id_seq OWNED BY public.auth_group.id;


--
-- Name: auth_group_permissions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_group_permissions (
    id integer NOT NULL,
    group_id integer NOT NULL,
    permission_id integer NOT NULL
);


--
-- Name: auth_group_permissions_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.auth_group_permissions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: auth_group_permissions_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.auth_group_permissions_id_seq OWNED BY public.auth_group_permissions.id;


--
-- Name: auth_permission; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_permission (
    id integer NOT NULL,
    name character varying(255) NOT NULL,
    content_type_id integer NOT NULL,
    codename character varying(100) NOT NULL
);


--
-- Name: auth_permission_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.auth_permission_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: auth_permission_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.auth_permission_id_seq OWNED BY public.auth_permission.id;


--
-- Name: auth_user; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_user (
    id integer NOT NULL,
    password character varying(128) NOT NULL,
    last_login timestamp with time zone,
    is_superuser boolean NOT NULL,
    username character varying(150) NOT NULL,
    first_name character varying(30) NOT NULL,
    last_name character varying(150) NOT NULL,
    email character varying(254) NOT NULL,
    is_staff boolean NOT NULL,
    is_active boolean NOT NULL,
    date_joined timestamp with time zone NOT NULL
);


--
-- Name: auth_user_groups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_user_groups (
    id integer NOT NULL,
    user_id integer NOT NULL,
    group_id integer NOT NULL
);


--
-- Name: auth_user_groups_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.auth_user_groups_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: auth_user_groups_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.auth_user_groups_id_seq OWNED BY public.auth_user_groups.id;


--
-- Name: auth_user_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.auth_user_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: auth_user_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.auth_user_id_seq OWNED BY public.auth_user.id;


--
-- Name: auth_user_user_permissions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_user_user_permissions (
    id integer NOT NULL,
    user_id integer NOT NULL,
    permission_id integer NOT NULL
);


--
-- Name: auth_user_user_permissions_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.auth_user_user_permissions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: auth_user_user_permissions_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.auth_user_user_permissions_id_seq OWNED BY public.auth_user_user_permissions.id;


--
-- Name: django_admin_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_admin_log (
    id integer NOT NULL,
    action_time timestamp with time zone NOT NULL,
    object_id text,
    object_repr character varying(200) NOT NULL,
    action_flag smallint NOT NULL,
    change_message text NOT NULL,
    content_type_id integer,
    user_id integer NOT NULL,
    CONSTRAINT django_admin_log_action_flag_check CHECK ((action_flag >= 0))
);


--
-- Name: django_admin_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_admin_log_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_admin_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_admin_log_id_seq OWNED BY public.django_admin_log.id;


--
-- Name: django_content_type; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_content_type (
    id integer NOT NULL,
    app_label character varying(100) NOT NULL,
    model character varying(100) NOT NULL
);


--
-- Name: django_content_type_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_content_type_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_content_type_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_content_type_id_seq OWNED BY public.django_content_type.id;


--
-- Name: django_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_migrations (
    id integer NOT NULL,
    app character varying(255) NOT NULL,
    name character varying(255) NOT NULL,
    applied timestamp with time zone NOT NULL
);


--
-- Name: django_migrations_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_migrations_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_migrations_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_migrations_id_seq OWNED BY public.django_migrations.id;


--
-- Name: django_remote_submission_interpreter; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_remote_submission_interpreter (
    id integer NOT NULL,
    created timestamp with time zone NOT NULL,
    modified timestamp with time zone NOT NULL,
    name character varying(100) NOT NULL,
    path character varying(256) NOT NULL,
    arguments text NOT NULL
);


--
-- Name: django_remote_submission_interpreter_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_remote_submission_interpreter_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_remote_submission_interpreter_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_remote_submission_interpreter_id_seq OWNED BY public.django_remote_submission_interpreter.id;


--
-- Name: django_remote_submission_job; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_remote_submission_job (
    id integer NOT NULL,
    created timestamp with time zone NOT NULL,
    modified timestamp with time zone NOT NULL,
    title character varying(250) NOT NULL,
    uuid uuid NOT NULL,
    program text NOT NULL,
    status character varying(100) NOT NULL,
    remote_directory character varying(250) NOT NULL,
    remote_filename character varying(250) NOT NULL,
    interpreter_id integer NOT NULL,
    owner_id integer NOT NULL,
    server_id integer NOT NULL
);


--
-- Name: django_remote_submission_job_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_remote_submission_job_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_remote_submission_job_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_remote_submission_job_id_seq OWNED BY public.django_remote_submission_job.id;


--
-- Name: django_remote_submission_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_remote_submission_log (
    id integer NOT NULL,
    "time" timestamp with time zone NOT NULL,
    content text NOT NULL,
    stream character varying(6) NOT NULL,
    job_id integer NOT NULL
);


--
-- Name: django_remote_submission_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_remote_submission_log_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_remote_submission_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_remote_submission_log_id_seq OWNED BY public.django_remote_submission_log.id;


--
-- Name: django_remote_submission_result; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_remote_submission_result (
    id integer NOT NULL,
    created timestamp with time zone NOT NULL,
    modified timestamp with time zone NOT NULL,
    remote_filename text NOT NULL,
    local_file character varying(250) NOT NULL,
    job_id integer NOT NULL
);


--
-- Name: django_remote_submission_result_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_remote_submission_result_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_remote_submission_result_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_remote_submission_result_id_seq OWNED BY public.django_remote_submission_result.id;


--
-- Name: django_remote_submission_server; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_remote_submission_server (
    id integer NOT NULL,
    created timestamp with time zone NOT NULL,
    modified timestamp with time zone NOT NULL,
    title character varying(100) NOT NULL,
    hostname character varying(100) NOT NULL,
    port integer NOT NULL
);


--
-- Name: django_remote_submission_server_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_remote_submission_server_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_remote_submission_server_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_remote_submission_server_id_seq OWNED BY public.django_remote_submission_server.id;


--
-- Name: django_remote_submission_server_interpreters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_remote_submission_server_interpreters (
    id integer NOT NULL,
    server_id integer NOT NULL,
    interpreter_id integer NOT NULL
);


--
-- Name: django_remote_submission_server_interpreters_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.django_remote_submission_server_interpreters_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: django_remote_submission_server_interpreters_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.django_remote_submission_server_interpreters_id_seq OWNED BY public.django_remote_submission_server_interpreters.id;


--
-- Name: django_session; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.django_session (
    session_key character varying(40) NOT NULL,
    session_data text NOT NULL,
    expire_date timestamp with time zone NOT NULL
);


--
-- Name: auth_group id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_group ALTER COLUMN id SET DEFAULT nextval('public.auth_group_id_seq'::regclass);


--
-- Name: auth_group_permissions id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_group_permissions ALTER COLUMN id SET DEFAULT nextval('public.auth_group_permissions_id_seq'::regclass);


--
-- Name: auth_permission id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_permission ALTER COLUMN id SET DEFAULT nextval('public.auth_permission_id_seq'::regclass);


--
-- Name: auth_user id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user ALTER COLUMN id SET DEFAULT nextval('public.auth_user_id_seq'::regclass);


--
-- Name: auth_user_groups id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_groups ALTER COLUMN id SET DEFAULT nextval('public.auth_user_groups_id_seq'::regclass);


--
-- Name: auth_user_user_permissions id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_user_permissions ALTER COLUMN id SET DEFAULT nextval('public.auth_user_user_permissions_id_seq'::regclass);


--
-- Name: django_admin_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_admin_log ALTER COLUMN id SET DEFAULT nextval('public.django_admin_log_id_seq'::regclass);


--
-- Name: django_content_type id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_content_type ALTER COLUMN id SET DEFAULT nextval('public.django_content_type_id_seq'::regclass);


--
-- Name: django_migrations id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_migrations ALTER COLUMN id SET DEFAULT nextval('public.django_migrations_id_seq'::regclass);


--
-- Name: django_remote_submission_interpreter id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_interpreter ALTER COLUMN id SET DEFAULT nextval('public.django_remote_submission_interpreter_id_seq'::regclass);


--
-- Name: django_remote_submission_job id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_job ALTER COLUMN id SET DEFAULT nextval('public.django_remote_submission_job_id_seq'::regclass);


--
-- Name: django_remote_submission_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_log ALTER COLUMN id SET DEFAULT nextval('public.django_remote_submission_log_id_seq'::regclass);


--
-- Name: django_remote_submission_result id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_result ALTER COLUMN id SET DEFAULT nextval('public.django_remote_submission_result_id_seq'::regclass);


--
-- Name: django_remote_submission_server id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_server ALTER COLUMN id SET DEFAULT nextval('public.django_remote_submission_server_id_seq'::regclass);


--
-- Name: django_remote_submission_server_interpreters id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_server_interpreters ALTER COLUMN id SET DEFAULT nextval('public.django_remote_submission_server_interpreters_id_seq'::regclass);


--
-- Data for Name: auth_group; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: auth_group_permissions; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: auth_permission; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.auth_permission VALUES (1, 'Can add log entry', 1, 'add_logentry');
INSERT INTO public.auth_permission VALUES (2, 'Can change log entry', 1, 'change_logentry');
INSERT INTO public.auth_permission VALUES (3, 'Can delete log entry', 1, 'delete_logentry');
INSERT INTO public.auth_permission VALUES (4, 'Can add permission', 2, 'add_permission');
INSERT INTO public.auth_permission VALUES (5, 'Can change permission', 2, 'change_permission');
INSERT INTO public.auth_permission VALUES (6, 'Can delete permission', 2, 'delete_permission');
INSERT INTO public.auth_permission VALUES (7, 'Can add group', 3, 'add_group');
INSERT INTO public.auth_permission VALUES (8, 'Can change group', 3, 'change_group');
INSERT INTO public.auth_permission VALUES (9, 'Can delete group', 3, 'delete_group');
INSERT INTO public.auth_permission VALUES (10, 'Can add user', 4, 'add_user');
INSERT INTO public.auth_permission VALUES (11, 'Can change user', 4, 'change_user');
INSERT INTO public.auth_permission VALUES (12, 'Can delete user', 4, 'delete_user');
INSERT INTO public.auth_permission VALUES (13, 'Can add content type', 5, 'add_contenttype');
INSERT INTO public.auth_permission VALUES (14, 'Can change content type', 5, 'change_contenttype');
INSERT INTO public.auth_permission VALUES (15, 'Can delete content type', 5, 'delete_contenttype');
INSERT INTO public.auth_permission VALUES (16, 'Can add session', 6, 'add_session');
INSERT INTO public.auth_permission VALUES (17, 'Can change session', 6, 'change_session');
INSERT INTO public.auth_permission VALUES (18, 'Can delete session', 6, 'delete_session');
INSERT INTO public.auth_permission VALUES (19, 'Can add interpreter', 7, 'add_interpreter');
INSERT INTO public.auth_permission VALUES (20, 'Can change interpreter', 7, 'change_interpreter');
INSERT INTO public.auth_permission VALUES (21, 'Can delete interpreter', 7, 'delete_interpreter');
INSERT INTO public.auth_permission VALUES (22, 'Can add job', 8, 'add_job');
INSERT INTO public.auth_permission VALUES (23, 'Can change job', 8, 'change_job');
INSERT INTO public.auth_permission VALUES (24, 'Can delete job', 8, 'delete_job');
INSERT INTO public.auth_permission VALUES (25, 'Can add log', 9, 'add_log');
INSERT INTO public.auth_permission VALUES (26, 'Can change log', 9, 'change_log');
INSERT INTO public.auth_permission VALUES (27, 'Can delete log', 9, 'delete_log');
INSERT INTO public.auth_permission VALUES (28, 'Can add result', 10, 'add_result');
INSERT INTO public.auth_permission VALUES (29, 'Can change result', 10, 'change_result');
INSERT INTO public.auth_permission VALUES (30, 'Can delete result', 10, 'delete_result');
INSERT INTO public.auth_permission VALUES (31, 'Can add server', 11, 'add_server');
INSERT INTO public.auth_permission VALUES (32, 'Can change server', 11, 'change_server');
INSERT INTO public.auth_permission VALUES (33, 'Can delete server', 11, 'delete_server');


--
-- Data for Name: auth_user; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.auth_user VALUES (1, 'pbkdf2_sha256$100000$jxRWzGxbUTf1$Kg59r/Dya/jBA1VJh0BFjqtJbAHFXyVFP3GwXEEbSW4=', NULL, true, 'alice', '', '', 'alice@example.org', true, true, '2026-12-03 18:01:11.208582+00');
INSERT INTO public.auth_user VALUES (2, 'pbkdf2_sha256$100000$8VpYvB5dBuTU$9SVqqQwDd8ZHOuNRjWRYl9qQnJWV1wtQdfw9rwYwQn4=', NULL, false, 'bob', '', '', 'bob@example.org', false, true, '2026-12-03 18:01:11.360646+00');


--
-- Data for Name: auth_user_groups; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: auth_user_user_permissions; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: django_admin_log; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: django_content_type; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.django_content_type VALUES (1, 'admin', 'logentry');
INSERT INTO public.django_content_type VALUES (2, 'auth', 'permission');
INSERT INTO public.django_content_type VALUES (3, 'auth', 'group');
INSERT INTO public.django_content_type VALUES (4, 'auth', 'user');
INSERT INTO public.django_content_type VALUES (5, 'contenttypes', 'contenttype');
INSERT INTO public.django_content_type VALUES (6, 'sessions', 'session');
INSERT INTO public.django_content_type VALUES (7, 'django_remote_submission', 'interpreter');
INSERT INTO public.django_content_type VALUES (8, 'django_remote_submission', 'job');
INSERT INTO public.django_content_type VALUES (9, 'django_remote_submission', 'log');
INSERT INTO public.django_content_type VALUES (10, 'django_remote_submission', 'result');
INSERT INTO public.django_content_type VALUES (11, 'django_remote_submission', 'server');


--
-- Data for Name: django_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.django_migrations VALUES (1, 'contenttypes', '0001_initial', '2026-12-03 18:01:10.720108+00');
INSERT INTO public.django_migrations VALUES (2, 'auth', '0001_initial', '2026-12-03 18:01:10.80104+00');
INSERT INTO public.django_migrations VALUES (3, 'admin', '0001_initial', '2026-12-03 18:01:10.831534+00');
INSERT INTO public.django_migrations VALUES (4, 'admin', '0002_logentry_remove_auto_add', '2026-12-03 18:01:10.845231+00');
INSERT INTO public.django_migrations VALUES (5, 'contenttypes', '0002_remove_content_type_name', '2026-12-03 18:01:10.871434+00');
INSERT INTO public.django_migrations VALUES (6, 'auth', '0002_alter_permission_name_max_length', '2026-12-03 18:01:10.88094+00');
INSERT INTO public.django_migrations VALUES (7, 'auth', '0003_alter_user_email_max_length', '2026-12-03 18:01:10.909052+00');
INSERT INTO public.django_migrations VALUES (8, 'auth', '0004_alter_user_username_opts', '2026-12-03 18:01:10.929324+00');
INSERT INTO public.django_migrations VALUES (9, 'auth', '0005_alter_user_last_login_null', '2026-12-03 18:01:10.94285+00');
INSERT INTO public.django_migrations VALUES (10, 'auth', '0006_require_contenttypes_0002', '2026-12-03 18:01:10.945724+00');
INSERT INTO public.django_migrations VALUES (11, 'auth', '0007_alter_validators_add_error_messages', '2026-12-03 18:01:10.961418+00');
INSERT INTO public.django_migrations VALUES (12, 'auth', '0008_alter_user_username_max_length', '2026-12-03 18:01:10.985712+00');
INSERT INTO public.django_migrations VALUES (13, 'auth', '0009_alter_user_last_name_max_length', '2026-12-03 18:01:10.998476+00');
INSERT INTO public.django_migrations VALUES (14, 'django_remote_submission', '0001_initial', '2026-12-03 18:01:11.122725+00');
INSERT INTO public.django_migrations VALUES (15, 'sessions', '0001_initial', '2026-12-03 18:01:11.134698+00');


--
-- Data for Name: django_remote_submission_interpreter; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.django_remote_submission_interpreter VALUES (1, '2026-12-03 18:01:11.497783+00', '2026-12-03 18:01:11.497783+00', 'Python 3', '/tmp/v2/bin/python', '[''-u'']');
INSERT INTO public.django_remote_submission_interpreter VALUES (2, '2026-12-03 18:01:11.501494+00', '2026-12-03 18:01:11.501494+00', 'Bash', '/bin/bash', '[]');
INSERT INTO public.django_remote_submission_interpreter VALUES (3, '2026-12-03 18:01:11.503632+00', '2026-12-03 18:01:11.503632+00', 'Python, quoted arguments', '/tmp/v2/bin/python', '[''-W'', ''ignore::DeprecationWarning'', ''-c'', ''import sys; print("it\''s", \''a \\\''quote\\\''\'', sys.argv[1:])'']');


--
-- Data for Name: django_remote_submission_job; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.django_remote_submission_job VALUES (1, '2026-12-03 18:01:11.522877+00', '2026-12-03 18:01:12.606195+00', 'Reduce run 1 – café', '0a7f929e-9ce7-4b35-9fa6-b70beb7b1af0', 'import sys
for i in range(1, 6):
    print(''line'', i, ''éè'')
print(''warning 1'', file=sys.stderr)
open(''out_1.txt'', ''w'').write(''first result\n'')
open(''table.csv'', ''w'').write(''a,b\n1,2\n'')
', 'success', '/tmp/drs2x-jobs/ok', 'run.py', 1, 1, 1);
INSERT INTO public.django_remote_submission_job VALUES (2, '2026-12-03 18:01:12.615161+00', '2026-12-03 18:01:13.64086+00', 'Fails', 'edcb9e16-8d16-4508-9b82-5b562631ec0e', 'echo before
echo oops >&2
exit 3
', 'failure', '/tmp/drs2x-jobs/bad', 'run.sh', 2, 2, 1);
INSERT INTO public.django_remote_submission_job VALUES (3, '2026-12-03 18:01:13.643853+00', '2026-12-03 18:01:14.723984+00', 'Arguments', '55f4ad2c-1ab1-46f2-9be3-2182c8f898f3', 'import sys
print(sys.argv)
', 'success', '/tmp/drs2x-jobs/args', 'run.py', 3, 1, 1);
INSERT INTO public.django_remote_submission_job VALUES (4, '2026-12-03 18:01:14.727989+00', '2026-12-03 18:01:14.731037+00', 'Stuck', 'a83af47a-3f22-4cdd-8632-df0a248ffb91', 'import time
time.sleep(1000)
', 'submitted', '/tmp/drs2x-jobs', 'run.py', 1, 2, 2);
INSERT INTO public.django_remote_submission_job VALUES (5, '2026-12-03 18:01:14.735515+00', '2026-12-03 18:01:14.735515+00', 'Not yet', '14690a27-3dfd-491c-8103-7d00959ecb40', 'print(''later'')
', 'initial', '/tmp/drs2x-jobs', 'run.py', 1, 1, 2);


--
-- Data for Name: django_remote_submission_log; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.django_remote_submission_log VALUES (1, '2026-12-03 18:01:12.594334+00', 'line 1 éè
', 'stdout', 1);
INSERT INTO public.django_remote_submission_log VALUES (2, '2026-12-03 18:01:12.598869+00', 'line 2 éè
', 'stdout', 1);
INSERT INTO public.django_remote_submission_log VALUES (3, '2026-12-03 18:01:12.600791+00', 'line 3 éè
', 'stdout', 1);
INSERT INTO public.django_remote_submission_log VALUES (4, '2026-12-03 18:01:12.602304+00', 'line 4 éè
', 'stdout', 1);
INSERT INTO public.django_remote_submission_log VALUES (5, '2026-12-03 18:01:12.603626+00', 'line 5 éè
', 'stdout', 1);
INSERT INTO public.django_remote_submission_log VALUES (6, '2026-12-03 18:01:12.604795+00', 'warning 1
', 'stderr', 1);
INSERT INTO public.django_remote_submission_log VALUES (7, '2026-12-03 18:01:13.635148+00', 'before
', 'stdout', 2);
INSERT INTO public.django_remote_submission_log VALUES (8, '2026-12-03 18:01:13.6352+00', 'oops
', 'stderr', 2);
INSERT INTO public.django_remote_submission_log VALUES (9, '2026-12-03 18:01:14.71942+00', 'it''s a ''quote'' [''run.py'']
', 'stdout', 3);
INSERT INTO public.django_remote_submission_log VALUES (10, '2026-12-03 18:01:14.733375+00', 'started
', 'stdout', 4);


--
-- Data for Name: django_remote_submission_result; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.django_remote_submission_result VALUES (1, '2026-12-03 18:01:12.608859+00', '2026-12-03 18:01:12.611472+00', 'table.csv', 'results/0a7f929e-9ce7-4b35-9fa6-b70beb7b1af0/table.csv', 1);
INSERT INTO public.django_remote_submission_result VALUES (2, '2026-12-03 18:01:12.612763+00', '2026-12-03 18:01:12.614056+00', 'out_1.txt', 'results/0a7f929e-9ce7-4b35-9fa6-b70beb7b1af0/out_1.txt', 1);


--
-- Data for Name: django_remote_submission_server; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.django_remote_submission_server VALUES (1, '2026-12-03 18:01:11.506032+00', '2026-12-03 18:01:11.506032+00', 'Local', 'localhost', 22);
INSERT INTO public.django_remote_submission_server VALUES (2, '2026-12-03 18:01:11.514926+00', '2026-12-03 18:01:11.514926+00', 'Cluster', 'login.cluster.example.org', 2222);


--
-- Data for Name: django_remote_submission_server_interpreters; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.django_remote_submission_server_interpreters VALUES (1, 1, 1);
INSERT INTO public.django_remote_submission_server_interpreters VALUES (2, 1, 2);
INSERT INTO public.django_remote_submission_server_interpreters VALUES (3, 1, 3);
INSERT INTO public.django_remote_submission_server_interpreters VALUES (4, 2, 1);


--
-- Data for Name: django_session; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Name: auth_group_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.auth_group_id_seq', 1, false);


--
-- Name: auth_group_permissions_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.auth_group_permissions_id_seq', 1, false);


--
-- Name: auth_permission_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.auth_permission_id_seq', 33, true);


--
-- Name: auth_user_groups_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.auth_user_groups_id_seq', 1, false);


--
-- Name: auth_user_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.auth_user_id_seq', 2, true);


--
-- Name: auth_user_user_permissions_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.auth_user_user_permissions_id_seq', 1, false);


--
-- Name: django_admin_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_admin_log_id_seq', 1, false);


--
-- Name: django_content_type_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_content_type_id_seq', 11, true);


--
-- Name: django_migrations_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_migrations_id_seq', 15, true);


--
-- Name: django_remote_submission_interpreter_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_remote_submission_interpreter_id_seq', 3, true);


--
-- Name: django_remote_submission_job_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_remote_submission_job_id_seq', 5, true);


--
-- Name: django_remote_submission_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_remote_submission_log_id_seq', 10, true);


--
-- Name: django_remote_submission_result_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_remote_submission_result_id_seq', 2, true);


--
-- Name: django_remote_submission_server_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_remote_submission_server_id_seq', 2, true);


--
-- Name: django_remote_submission_server_interpreters_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.django_remote_submission_server_interpreters_id_seq', 4, true);


--
-- Name: auth_group auth_group_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_group
    ADD CONSTRAINT auth_group_name_key UNIQUE (name);


--
-- Name: auth_group_permissions auth_group_permissions_group_id_permission_id_0cd325b0_uniq; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_group_permissions
    ADD CONSTRAINT auth_group_permissions_group_id_permission_id_0cd325b0_uniq UNIQUE (group_id, permission_id);


--
-- Name: auth_group_permissions auth_group_permissions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_group_permissions
    ADD CONSTRAINT auth_group_permissions_pkey PRIMARY KEY (id);


--
-- Name: auth_group auth_group_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_group
    ADD CONSTRAINT auth_group_pkey PRIMARY KEY (id);


--
-- Name: auth_permission auth_permission_content_type_id_codename_01ab375a_uniq; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_permission
    ADD CONSTRAINT auth_permission_content_type_id_codename_01ab375a_uniq UNIQUE (content_type_id, codename);


--
-- Name: auth_permission auth_permission_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_permission
    ADD CONSTRAINT auth_permission_pkey PRIMARY KEY (id);


--
-- Name: auth_user_groups auth_user_groups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_groups
    ADD CONSTRAINT auth_user_groups_pkey PRIMARY KEY (id);


--
-- Name: auth_user_groups auth_user_groups_user_id_group_id_94350c0c_uniq; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_groups
    ADD CONSTRAINT auth_user_groups_user_id_group_id_94350c0c_uniq UNIQUE (user_id, group_id);


--
-- Name: auth_user auth_user_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user
    ADD CONSTRAINT auth_user_pkey PRIMARY KEY (id);


--
-- Name: auth_user_user_permissions auth_user_user_permissions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_user_permissions
    ADD CONSTRAINT auth_user_user_permissions_pkey PRIMARY KEY (id);


--
-- Name: auth_user_user_permissions auth_user_user_permissions_user_id_permission_id_14a6b632_uniq; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_user_permissions
    ADD CONSTRAINT auth_user_user_permissions_user_id_permission_id_14a6b632_uniq UNIQUE (user_id, permission_id);


--
-- Name: auth_user auth_user_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user
    ADD CONSTRAINT auth_user_username_key UNIQUE (username);


--
-- Name: django_admin_log django_admin_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_admin_log
    ADD CONSTRAINT django_admin_log_pkey PRIMARY KEY (id);


--
-- Name: django_content_type django_content_type_app_label_model_76bd3d3b_uniq; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_content_type
    ADD CONSTRAINT django_content_type_app_label_model_76bd3d3b_uniq UNIQUE (app_label, model);


--
-- Name: django_content_type django_content_type_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_content_type
    ADD CONSTRAINT django_content_type_pkey PRIMARY KEY (id);


--
-- Name: django_migrations django_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_migrations
    ADD CONSTRAINT django_migrations_pkey PRIMARY KEY (id);


--
-- Name: django_remote_submission_interpreter django_remote_submission_interpreter_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_interpreter
    ADD CONSTRAINT django_remote_submission_interpreter_pkey PRIMARY KEY (id);


--
-- Name: django_remote_submission_job django_remote_submission_job_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_job
    ADD CONSTRAINT django_remote_submission_job_pkey PRIMARY KEY (id);


--
-- Name: django_remote_submission_log django_remote_submission_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_log
    ADD CONSTRAINT django_remote_submission_log_pkey PRIMARY KEY (id);


--
-- Name: django_remote_submission_result django_remote_submission_result_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_result
    ADD CONSTRAINT django_remote_submission_result_pkey PRIMARY KEY (id);


--
-- Name: django_remote_submission_server_interpreters django_remote_submission_server_id_interpreter_id_4a71a0af_uniq; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_server_interpreters
    ADD CONSTRAINT django_remote_submission_server_id_interpreter_id_4a71a0af_uniq UNIQUE (server_id, interpreter_id);


--
-- Name: django_remote_submission_server_interpreters django_remote_submission_server_interpreters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_server_interpreters
    ADD CONSTRAINT django_remote_submission_server_interpreters_pkey PRIMARY KEY (id);


--
-- Name: django_remote_submission_server django_remote_submission_server_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_server
    ADD CONSTRAINT django_remote_submission_server_pkey PRIMARY KEY (id);


--
-- Name: django_session django_session_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_session
    ADD CONSTRAINT django_session_pkey PRIMARY KEY (session_key);


--
-- Name: auth_group_name_a6ea08ec_like; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_group_name_a6ea08ec_like ON public.auth_group USING btree (name varchar_pattern_ops);


--
-- Name: auth_group_permissions_group_id_b120cbf9; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_group_permissions_group_id_b120cbf9 ON public.auth_group_permissions USING btree (group_id);


--
-- Name: auth_group_permissions_permission_id_84c5c92e; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_group_permissions_permission_id_84c5c92e ON public.auth_group_permissions USING btree (permission_id);


--
-- Name: auth_permission_content_type_id_2f476e4b; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_permission_content_type_id_2f476e4b ON public.auth_permission USING btree (content_type_id);


--
-- Name: auth_user_groups_group_id_97559544; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_user_groups_group_id_97559544 ON public.auth_user_groups USING btree (group_id);


--
-- Name: auth_user_groups_user_id_6a12ed8b; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_user_groups_user_id_6a12ed8b ON public.auth_user_groups USING btree (user_id);


--
-- Name: auth_user_user_permissions_permission_id_1fbb5f2c; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_user_user_permissions_permission_id_1fbb5f2c ON public.auth_user_user_permissions USING btree (permission_id);


--
-- Name: auth_user_user_permissions_user_id_a95ead1b; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_user_user_permissions_user_id_a95ead1b ON public.auth_user_user_permissions USING btree (user_id);


--
-- Name: auth_user_username_6821ab7c_like; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_user_username_6821ab7c_like ON public.auth_user USING btree (username varchar_pattern_ops);


--
-- Name: django_admin_log_content_type_id_c4bce8eb; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_admin_log_content_type_id_c4bce8eb ON public.django_admin_log USING btree (content_type_id);


--
-- Name: django_admin_log_user_id_c564eba6; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_admin_log_user_id_c564eba6 ON public.django_admin_log USING btree (user_id);


--
-- Name: django_remote_submission_job_interpreter_id_5bc15e1f; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_remote_submission_job_interpreter_id_5bc15e1f ON public.django_remote_submission_job USING btree (interpreter_id);


--
-- Name: django_remote_submission_job_owner_id_0daa48cc; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_remote_submission_job_owner_id_0daa48cc ON public.django_remote_submission_job USING btree (owner_id);


--
-- Name: django_remote_submission_job_server_id_71d49d34; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_remote_submission_job_server_id_71d49d34 ON public.django_remote_submission_job USING btree (server_id);


--
-- Name: django_remote_submission_log_job_id_945f8779; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_remote_submission_log_job_id_945f8779 ON public.django_remote_submission_log USING btree (job_id);


--
-- Name: django_remote_submission_result_job_id_96fae358; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_remote_submission_result_job_id_96fae358 ON public.django_remote_submission_result USING btree (job_id);


--
-- Name: django_remote_submission_s_interpreter_id_30a905e4; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_remote_submission_s_interpreter_id_30a905e4 ON public.django_remote_submission_server_interpreters USING btree (interpreter_id);


--
-- Name: django_remote_submission_server_interpreters_server_id_37e4c41a; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_remote_submission_server_interpreters_server_id_37e4c41a ON public.django_remote_submission_server_interpreters USING btree (server_id);


--
-- Name: django_session_expire_date_a5c62663; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_session_expire_date_a5c62663 ON public.django_session USING btree (expire_date);


--
-- Name: django_session_session_key_c0390e0f_like; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX django_session_session_key_c0390e0f_like ON public.django_session USING btree (session_key varchar_pattern_ops);


--
-- Name: auth_group_permissions auth_group_permissio_permission_id_84c5c92e_fk_auth_perm; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_group_permissions
    ADD CONSTRAINT auth_group_permissio_permission_id_84c5c92e_fk_auth_perm FOREIGN KEY (permission_id) REFERENCES public.auth_permission(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: auth_group_permissions auth_group_permissions_group_id_b120cbf9_fk_auth_group_id; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_group_permissions
    ADD CONSTRAINT auth_group_permissions_group_id_b120cbf9_fk_auth_group_id FOREIGN KEY (group_id) REFERENCES public.auth_group(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: auth_permission auth_permission_content_type_id_2f476e4b_fk_django_co; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_permission
    ADD CONSTRAINT auth_permission_content_type_id_2f476e4b_fk_django_co FOREIGN KEY (content_type_id) REFERENCES public.django_content_type(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: auth_user_groups auth_user_groups_group_id_97559544_fk_auth_group_id; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_groups
    ADD CONSTRAINT auth_user_groups_group_id_97559544_fk_auth_group_id FOREIGN KEY (group_id) REFERENCES public.auth_group(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: auth_user_groups auth_user_groups_user_id_6a12ed8b_fk_auth_user_id; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_groups
    ADD CONSTRAINT auth_user_groups_user_id_6a12ed8b_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES public.auth_user(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: auth_user_user_permissions auth_user_user_permi_permission_id_1fbb5f2c_fk_auth_perm; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_user_permissions
    ADD CONSTRAINT auth_user_user_permi_permission_id_1fbb5f2c_fk_auth_perm FOREIGN KEY (permission_id) REFERENCES public.auth_permission(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: auth_user_user_permissions auth_user_user_permissions_user_id_a95ead1b_fk_auth_user_id; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_user_user_permissions
    ADD CONSTRAINT auth_user_user_permissions_user_id_a95ead1b_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES public.auth_user(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_admin_log django_admin_log_content_type_id_c4bce8eb_fk_django_co; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_admin_log
    ADD CONSTRAINT django_admin_log_content_type_id_c4bce8eb_fk_django_co FOREIGN KEY (content_type_id) REFERENCES public.django_content_type(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_admin_log django_admin_log_user_id_c564eba6_fk_auth_user_id; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_admin_log
    ADD CONSTRAINT django_admin_log_user_id_c564eba6_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES public.auth_user(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_remote_submission_server_interpreters django_remote_submis_interpreter_id_30a905e4_fk_django_re; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_server_interpreters
    ADD CONSTRAINT django_remote_submis_interpreter_id_30a905e4_fk_django_re FOREIGN KEY (interpreter_id) REFERENCES public.django_remote_submission_interpreter(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_remote_submission_job django_remote_submis_interpreter_id_5bc15e1f_fk_django_re; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_job
    ADD CONSTRAINT django_remote_submis_interpreter_id_5bc15e1f_fk_django_re FOREIGN KEY (interpreter_id) REFERENCES public.django_remote_submission_interpreter(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_remote_submission_log django_remote_submis_job_id_945f8779_fk_django_re; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_log
    ADD CONSTRAINT django_remote_submis_job_id_945f8779_fk_django_re FOREIGN KEY (job_id) REFERENCES public.django_remote_submission_job(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_remote_submission_result django_remote_submis_job_id_96fae358_fk_django_re; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_result
    ADD CONSTRAINT django_remote_submis_job_id_96fae358_fk_django_re FOREIGN KEY (job_id) REFERENCES public.django_remote_submission_job(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_remote_submission_server_interpreters django_remote_submis_server_id_37e4c41a_fk_django_re; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_server_interpreters
    ADD CONSTRAINT django_remote_submis_server_id_37e4c41a_fk_django_re FOREIGN KEY (server_id) REFERENCES public.django_remote_submission_server(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_remote_submission_job django_remote_submis_server_id_71d49d34_fk_django_re; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_job
    ADD CONSTRAINT django_remote_submis_server_id_71d49d34_fk_django_re FOREIGN KEY (server_id) REFERENCES public.django_remote_submission_server(id) DEFERRABLE INITIALLY DEFERRED;


--
-- Name: django_remote_submission_job django_remote_submission_job_owner_id_0daa48cc_fk_auth_user_id; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.django_remote_submission_job
    ADD CONSTRAINT django_remote_submission_job_owner_id_0daa48cc_fk_auth_user_id FOREIGN KEY (owner_id) REFERENCES public.auth_user(id) DEFERRABLE INITIALLY DEFERRED;


--
-- PostgreSQL database dump complete
--


