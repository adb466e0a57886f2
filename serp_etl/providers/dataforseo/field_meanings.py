"""What the reference page says each field of the task_get/advanced result means, by its
path from the result object (``items`` entries under their type): transcribed from
``shared/api/dataforseo-google-search-by-image-task-get-advanced.md``. The columns of the
flattened tables are described from it (``core.column_docs``)."""

FIELD_MEANINGS: dict[tuple[str, ...], str] = {
    ("serps", "image_url"): "URL specified in a POST array",
    ("serps", "keyword"): "keyword Google associated with the specified image",
    ("serps", "type"): "search engine type in a POST array",
    ("serps", "se_domain"): "search engine domain in a POST array",
    ("serps", "location_code"): "location code in a POST array",
    ("serps", "language_code"): "language code in a POST array",
    (
        "serps",
        "check_url",
    ): "direct URL to search engine results; you can use it to make sure that we provided "
    "accurate results",
    (
        "serps",
        "datetime",
    ): 'date and time when the result was received; in the UTC format: "yyyy-mm-dd hh-mm-ss '
    '+00:00"; example:; 2019-11-15 12:57:46 +00:00',
    (
        "serps",
        "spell",
    ): "autocorrection of the search engine; if the search engine provided results for a keyword"
    " that was corrected, we will specify the keyword corrected by the search engine and the "
    "type of autocorrection",
    (
        "serps",
        "spell",
        "keyword",
    ): "keyword obtained as a result of search engine autocorrection; the results will be "
    "provided for the corrected keyword",
    (
        "serps",
        "spell",
        "type",
    ): "type of autocorrection; possible values: did_you_mean, showing_results_for, "
    "no_results_found_for, including_results_for",
    ("serps", "refinement_chips"): "search refinement chips",
    ("serps", "refinement_chips", "type"): "type of element = 'refinement_chips'",
    ("serps", "refinement_chips", "xpath"): "the XPath of the element",
    ("serps", "refinement_chips", "items"): "items of the element",
    ("serps", "refinement_chips", "items", "type"): "type of element = 'refinement_chips_element'",
    ("serps", "refinement_chips", "items", "title"): "title of the element",
    ("serps", "refinement_chips", "items", "url"): "search URL with refinement parameters",
    ("serps", "refinement_chips", "items", "domain"): "domain in SERP",
    ("serps", "refinement_chips", "items", "options"): "further search refinement options",
    (
        "serps",
        "refinement_chips",
        "items",
        "options",
        "type",
    ): "type of element = 'refinement_chips_option'",
    ("serps", "refinement_chips", "items", "options", "title"): "title of the element",
    (
        "serps",
        "refinement_chips",
        "items",
        "options",
        "url",
    ): "search URL with refinement parameters",
    ("serps", "refinement_chips", "items", "options", "domain"): "domain in SERP",
    (
        "serps",
        "item_types",
    ): "types of search results in SERP; contains types of search results (items) found in "
    "SERP.; possible item types:; organic,; images",
    ("serps", "se_results_count"): "total number of results in SERP",
    ("serps", "items_count"): "the number of results returned in the items array",
    ("organic", "type"): "type of element = 'organic'",
    (
        "organic",
        "rank_group",
    ): "group rank in SERP; position within a group of elements with identical type values; "
    "positions of elements with different type values are omitted from rank_group",
    (
        "organic",
        "rank_absolute",
    ): "absolute rank in SERP; absolute position among all the elements in SERP",
    (
        "organic",
        "position",
    ): "the alignment of the element in SERP; can take the following values: left, right",
    ("organic", "xpath"): "the XPath of the element",
    ("organic", "domain"): "domain in SERP",
    ("organic", "title"): "title of the result in SERP",
    ("organic", "url"): "relevant URL in SERP",
    ("organic", "cache_url"): "cached version of the page",
    (
        "organic",
        "related_search_url",
    ): "URL to a similar search; URL to a new search for the same keyword(s) on related sites",
    ("organic", "breadcrumb"): "breadcrumb in SERP",
    ("organic", "website_name"): "name of the website in SERP",
    ("organic", "is_image"): "indicates whether the element contains an image",
    ("organic", "is_video"): "indicates whether the element contains a video",
    ("organic", "is_featured_snippet"): "indicates whether the element is a featured_snippet",
    ("organic", "is_malicious"): "indicates whether the element is marked as malicious",
    ("organic", "is_web_story"): "indicates whether the element is marked as Google web story",
    ("organic", "description"): "description of the results element in SERP",
    (
        "organic",
        "pre_snippet",
    ): "includes additional information appended before the result description in SERP",
    (
        "organic",
        "extended_snippet",
    ): "includes additional information appended after the result description in SERP",
    ("organic", "images"): "images of the element",
    ("organic", "images", "type"): "type of element = 'images_element'",
    ("organic", "images", "alt"): "alt tag of the image",
    ("organic", "images", "url"): "relevant URL",
    (
        "organic",
        "images",
        "image_url",
    ): "URL of the image; the URL leading to the image on the original resource or DataForSEO "
    "storage (in case the original source is not available)",
    (
        "organic",
        "amp_version",
    ): "Accelerated Mobile Pages; indicates whether an item has the Accelerated Mobile Page "
    "(AMP) version",
    (
        "organic",
        "rating",
    ): "the item's rating; the popularity rate based on reviews and displayed in SERP",
    (
        "organic",
        "rating",
        "rating_type",
    ): "the type of rating; here you can find the following elements: Max5, Percents, CustomMax",
    ("organic", "rating", "value"): "the value of the rating",
    ("organic", "rating", "votes_count"): "the amount of feedback",
    ("organic", "rating", "rating_max"): "the maximum value for a rating_type",
    (
        "organic",
        "price",
    ): "pricing details; contains the pricing details of the product or service featured in the "
    "result",
    (
        "organic",
        "price",
        "current",
    ): "current price; indicates the current price of the product or service featured in the "
    "result",
    (
        "organic",
        "price",
        "regular",
    ): "regular price; indicates the regular price of the product or service with no discounts "
    "applied",
    (
        "organic",
        "price",
        "max_value",
    ): "the maximum price; the maximum price of the product or service as indicated in the result",
    (
        "organic",
        "price",
        "currency",
    ): "currency of the listed price; ISO code of the currency applied to the price",
    (
        "organic",
        "price",
        "is_price_range",
    ): "price is provided as a range; indicates whether a price is provided in a range",
    (
        "organic",
        "price",
        "displayed_price",
    ): "price string in the result; raw price string as provided in the result",
    ("organic", "highlighted"): "words highlighted in bold within the results description",
    (
        "organic",
        "links",
    ): "sitelinks; the links shown below some of Google's search results; if there are none, "
    "equals null",
    ("organic", "links", "type"): "type of element = 'link_element'",
    ("organic", "links", "title"): "title of the result in SERP",
    ("organic", "links", "url"): "sitelink URL",
    ("organic", "links", "domain"): "domain in SERP",
    ("organic", "links", "description"): "description of the results element in SERP",
    (
        "organic",
        "faq",
    ): "frequently asked questions; questions and answers extension shown below some of Google's"
    " search results; if there are none, equals null",
    ("organic", "faq", "type"): "type of element = 'faq_box'",
    ("organic", "faq", "items"): "items featured in the faq_box",
    ("organic", "faq", "items", "type"): "type of element = 'faq_box_element'",
    ("organic", "faq", "items", "title"): "question related to the result",
    ("organic", "faq", "items", "description"): "answer provided in the drop-down block",
    ("organic", "faq", "items", "links"): "links featured in the faq_box_element",
    ("organic", "faq", "items", "links", "type"): "type of element = 'link_element'",
    ("organic", "faq", "items", "links", "title"): "link anchor text",
    ("organic", "faq", "items", "links", "url"): "link URL",
    ("organic", "faq", "items", "links", "domain"): "domain in SERP",
    (
        "organic",
        "extended_people_also_search",
    ): "extension of the organic element; extension of the organic result containing related "
    "search queries; Note: extension appears in SERP upon clicking on the result and then "
    "bouncing back to search results",
    (
        "organic",
        "about_this_result",
    ): "contains information from the 'About this result' panel; 'About this result' panel "
    "provides additional context about why Google returned this result for the given query;; "
    "this feature appears after clicking on the three dots next to most results",
    ("organic", "about_this_result", "type"): "type of element = 'about_this_result_element'",
    ("organic", "about_this_result", "url"): "result's URL",
    ("organic", "about_this_result", "source"): "source of additional information about the result",
    (
        "organic",
        "about_this_result",
        "source_info",
    ): "additional information about the result; description of the website from Wikipedia or "
    "another additional context",
    ("organic", "about_this_result", "source_url"): "URL to full information from the source",
    ("organic", "about_this_result", "language"): "the language of the result",
    ("organic", "about_this_result", "location"): "location for which the result is relevant",
    (
        "organic",
        "about_this_result",
        "search_terms",
    ): "matching search terms that appear in the result",
    (
        "organic",
        "about_this_result",
        "related_terms",
    ): "related search terms that appear in the result",
    (
        "organic",
        "related_result",
    ): "related result from the same domain; related result from the same domain appears as a "
    'part of the main result snippet;; you can derive the related_result snippets as "type": '
    '"organic" results by setting the group_organic_results parameter to false in the POST '
    "request",
    ("organic", "related_result", "type"): "type of element = 'related_result'",
    ("organic", "related_result", "xpath"): "the XPath of the element",
    ("organic", "related_result", "domain"): "relevant domain",
    ("organic", "related_result", "title"): "title of the result in SERP",
    ("organic", "related_result", "url"): "relevant URL in SERP",
    ("organic", "related_result", "cache_url"): "cached version of the page",
    (
        "organic",
        "related_result",
        "related_search_url",
    ): "URL to a similar search; URL to a new search for the same keyword(s) on related sites",
    ("organic", "related_result", "breadcrumb"): "breadcrumb in SERP",
    ("organic", "related_result", "is_image"): "indicates whether the element contains an image",
    ("organic", "related_result", "is_video"): "indicates whether the element contains a video",
    ("organic", "related_result", "description"): "description of the results element in SERP",
    (
        "organic",
        "related_result",
        "pre_snippet",
    ): "includes additional information appended before the result description in SERP",
    (
        "organic",
        "related_result",
        "extended_snippet",
    ): "includes additional information appended after the result description in SERP",
    ("organic", "related_result", "images"): "images of the element",
    ("organic", "related_result", "images", "type"): "type of element = 'images_element'",
    ("organic", "related_result", "images", "alt"): "alt tag of the image",
    ("organic", "related_result", "images", "url"): "relevant URL",
    (
        "organic",
        "related_result",
        "images",
        "image_url",
    ): "URL of the image; the URL leading to the image on the original resource or DataForSEO "
    "storage (in case the original source is not available)",
    (
        "organic",
        "related_result",
        "amp_version",
    ): "Accelerated Mobile Pages; indicates whether an item has the Accelerated Mobile Page "
    "(AMP) version",
    (
        "organic",
        "related_result",
        "rating",
    ): "the item's rating; the popularity rate based on reviews and displayed in SERP",
    (
        "organic",
        "related_result",
        "rating",
        "rating_type",
    ): "the type of rating; here you can find the following elements: Max5, Percents, CustomMax",
    ("organic", "related_result", "rating", "value"): "the value of the rating",
    ("organic", "related_result", "rating", "votes_count"): "the amount of feedback",
    ("organic", "related_result", "rating", "rating_max"): "the maximum value for a rating_type",
    (
        "organic",
        "related_result",
        "price",
    ): "pricing details; contains the pricing details of the product or service featured in the "
    "result",
    (
        "organic",
        "related_result",
        "price",
        "current",
    ): "current price; indicates the current price of the product or service featured in the "
    "result",
    (
        "organic",
        "related_result",
        "price",
        "regular",
    ): "regular price; indicates the regular price of the product or service with no discounts "
    "applied",
    (
        "organic",
        "related_result",
        "price",
        "max_value",
    ): "the maximum price; the maximum price of the product or service as indicated in the result",
    (
        "organic",
        "related_result",
        "price",
        "currency",
    ): "currency of the listed price; ISO code of the currency applied to the price",
    (
        "organic",
        "related_result",
        "price",
        "is_price_range",
    ): "price is provided as a range; indicates whether a price is provided in a range",
    (
        "organic",
        "related_result",
        "price",
        "displayed_price",
    ): "price string in the result; raw price string as provided in the result",
    (
        "organic",
        "related_result",
        "highlighted",
    ): "words highlighted in bold within the results description",
    (
        "organic",
        "related_result",
        "about_this_result",
    ): "contains information from the 'About this result' panel; 'About this result' panel "
    "provides additional context about why Google returned this result for the given query;; "
    "this feature appears after clicking on the three dots next to most results",
    (
        "organic",
        "related_result",
        "about_this_result",
        "type",
    ): "type of element = 'about_this_result_element'",
    ("organic", "related_result", "about_this_result", "url"): "result's URL",
    (
        "organic",
        "related_result",
        "about_this_result",
        "source",
    ): "source of additional information about the result",
    (
        "organic",
        "related_result",
        "about_this_result",
        "source_info",
    ): "additional information about the result; description of the website from Wikipedia or "
    "another additional context",
    (
        "organic",
        "related_result",
        "about_this_result",
        "source_url",
    ): "URL to full information from the source",
    ("organic", "related_result", "about_this_result", "language"): "the language of the result",
    (
        "organic",
        "related_result",
        "about_this_result",
        "location",
    ): "location for which the result is relevant",
    (
        "organic",
        "related_result",
        "about_this_result",
        "search_terms",
    ): "matching search terms that appear in the result",
    (
        "organic",
        "related_result",
        "about_this_result",
        "related_terms",
    ): "related search terms that appear in the result",
    (
        "organic",
        "related_result",
        "timestamp",
    ): 'date and time when the result was published; in the UTC format: "yyyy-mm-dd hh-mm-ss '
    '+00:00"; example:; 2019-11-15 12:57:46 +00:00',
    (
        "organic",
        "timestamp",
    ): 'date and time when the result was published; in the UTC format: "yyyy-mm-dd hh-mm-ss '
    '+00:00"; example:; 2019-11-15 12:57:46 +00:00',
    (
        "organic",
        "rectangle",
    ): "rectangle parameters; contains cartesian coordinates and pixel dimensions of the "
    "result's snippet in SERP; equals null if calculate_rectangles in the POST request is not"
    " set to true",
    (
        "organic",
        "rectangle",
        "x",
    ): "x-axis coordinate; x-axis coordinate of the top-left corner of the result's snippet, "
    "where top-left corner of the screen is the origin",
    (
        "organic",
        "rectangle",
        "y",
    ): "y-axis coordinate; y-axis coordinate of the top-left corner of the result's snippet, "
    "where top-left corner of the screen is the origin",
    ("organic", "rectangle", "width"): "width of the element in pixels",
    ("organic", "rectangle", "height"): "height of the element in pixels",
    ("images", "type"): "type of element = 'images'",
    (
        "images",
        "rank_group",
    ): "group rank in SERP; position within a group of elements with identical type values; "
    "positions of elements with different type values are omitted from rank_group",
    (
        "images",
        "rank_absolute",
    ): "absolute rank in SERP; absolute position among all the elements in SERP",
    (
        "images",
        "position",
    ): "the alignment of the element in SERP; can take the following values: left, right",
    ("images", "xpath"): "the XPath of the element",
    ("images", "title"): "title of the result in SERP",
    ("images", "url"): "relevant URL",
    ("images", "items"): "additional items present in the element; if there are none, equals null",
    ("images", "items", "type"): "type of element = 'images_element'",
    ("images", "items", "alt"): "alt tag of the image",
    (
        "images",
        "items",
        "url",
    ): "URL of the image resource; the URL leading to the resource where the image is posted",
    (
        "images",
        "items",
        "image_url",
    ): "URL to the compressed image; the URL leading to the image thumbnail",
    (
        "images",
        "related_image_searches",
    ): "contains keywords and images related to the specified search term; if there are none, "
    "equals null",
    (
        "images",
        "related_image_searches",
        "type",
    ): "type of element = 'related_image_searches_element'",
    (
        "images",
        "related_image_searches",
        "title",
    ): "title of the element; indicates keyword that may be used with the specified term to "
    "refine image search",
    ("images", "related_image_searches", "alt"): "alt tag of the featured image",
    (
        "images",
        "related_image_searches",
        "url",
    ): "original URL of the featured image; the URL leading to the image on the original resource",
    (
        "images",
        "related_image_searches",
        "image_url",
    ): "URL to the compressed featured image; the URL leading to the image on DataForSEO storage",
    (
        "images",
        "rectangle",
    ): "rectangle parameters; contains cartesian coordinates and pixel dimensions of the "
    "result's snippet in SERP; equals null if calculate_rectangles in the POST request is not"
    " set to true",
    (
        "images",
        "rectangle",
        "x",
    ): "x-axis coordinate; x-axis coordinate of the top-left corner of the result's snippet, "
    "where top-left corner of the screen is the origin",
    (
        "images",
        "rectangle",
        "y",
    ): "y-axis coordinate; y-axis coordinate of the top-left corner of the result's snippet, "
    "where top-left corner of the screen is the origin",
    ("images", "rectangle", "width"): "width of the element in pixels",
    ("images", "rectangle", "height"): "height of the element in pixels",
}
